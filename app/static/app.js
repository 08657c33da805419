// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  ready(function () {
    // Copy buttons: shown only when the clipboard can be used.
    document.querySelectorAll(".js-copy").forEach(function (button) {
      if (!navigator.clipboard) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        var target = document.getElementById(button.getAttribute("data-copy-target"));
        if (!target) return;
        var text = (target.getAttribute("data-copy-value") || target.textContent || "").trim();
        navigator.clipboard.writeText(text).then(function () {
          var label = button.getAttribute("data-copied-label") || button.textContent;
          var original = button.textContent;
          button.textContent = label;
          setTimeout(function () { button.textContent = original; }, 2000);
        });
      });
    });

    // Countdown to the next 30-second code.
    document.querySelectorAll(".js-countdown").forEach(function (el) {
      var output = el.querySelector(".js-countdown-value");
      if (!output) return;
      el.hidden = false;
      function tick() {
        var left = 30 - (Math.floor(Date.now() / 1000) % 30);
        output.textContent = String(left);
      }
      tick();
      setInterval(tick, 1000);
    });

    // Focus the first error so keyboard and screen-reader users land on it.
    var summary = document.getElementById("error-summary");
    var firstInvalid = document.querySelector("[aria-invalid='true']");
    if (firstInvalid) firstInvalid.focus();
    else if (summary) summary.focus();

    // Confirmation before destructive actions (the server still asks for what it needs).
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  });
})();
