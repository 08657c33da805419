"""Faults at every IAM step of invite, enroll, reset and offboard, injected by tests/faultproxy.

Each case injects one fault kind on one IAM operation, once or until cleared, runs the
operation, then does what a person would do next (press the same button, run the same
command) and checks the IAM state a person would see.
"""
