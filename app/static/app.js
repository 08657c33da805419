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

    // Language: a choice made with the mouse (or confirmed with Enter) switches at once, so the
    // button is hidden where this runs (.js .js-hide). Arrow keys on the closed menu change the
    // value without leaving the page (WCAG 3.2.2); Enter then switches.
    document.querySelectorAll(".js-lang-switch").forEach(function (form) {
      var select = form.querySelector("select");
      if (!select) return;
      var byKeys = false;
      select.addEventListener("keydown", function (event) {
        if (event.key === "Enter") {
          event.preventDefault();
          form.submit();
          return;
        }
        byKeys = event.key !== "Tab";
      });
      select.addEventListener("pointerdown", function () { byKeys = false; });
      select.addEventListener("change", function () {
        if (!byKeys) form.submit();
      });
    });

    // Times: the markup says UTC (the fallback); the reader gets their own zone, compactly.
    var lang = document.documentElement.lang || undefined;
    function two(n) { return (n < 10 ? "0" : "") + n; }
    function zoneName(date) {
      try {
        var parts = new Intl.DateTimeFormat(lang, { timeZoneName: "short" }).formatToParts(date);
        for (var i = 0; i < parts.length; i++) {
          if (parts[i].type === "timeZoneName") return parts[i].value;
        }
      } catch (e) { /* an old browser: no zone name */ }
      return "";
    }
    document.querySelectorAll("time[data-local]").forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      var kind = el.getAttribute("data-local");
      var day = date.getFullYear() + "-" + two(date.getMonth() + 1) + "-" + two(date.getDate());
      var clock = two(date.getHours()) + ":" + two(date.getMinutes());
      if (kind === "seconds") clock += ":" + two(date.getSeconds());
      var text = kind === "date" ? day : (kind === "time" ? clock : day + " " + clock);
      if (kind !== "date") {
        var zone = zoneName(date);
        if (zone) text += " " + zone;
      }
      el.textContent = text;
    });

    // Confirmation before destructive actions (the server still asks for what it needs).
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  });
})();
