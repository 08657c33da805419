"""The lifecycle of a portal user after the invitation, one module per thing a reader looks for.

- ownership: which IAM users the portal may act on (managed, never protected)
- links: issuing and mailing enrollment links, and revoking the live ones
- steps: IAM calls audited one by one, safe to repeat
- plans: what an admin sees before an action (read-only)
- waiting: resend or revoke a link that waits to be used
- lost_device: reset MFA after a lost phone
- offboarding: remove everything attached to a user, then the user
- adoption: bring an existing IAM user under the portal and send it a link
- contacts: change a managed user's contact email
"""
