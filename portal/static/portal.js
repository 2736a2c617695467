// Small progressive enhancements. Every form works without this file.
(function () {
  "use strict";

  function statusFor(button) {
    var group = button.closest(".reveal");
    return group ? group.querySelector(".copy-status") : null;
  }

  function fallbackCopy(field) {
    field.focus();
    field.select();
    try { return document.execCommand("copy"); } catch (e) { return false; }
  }

  // "Copy" buttons: data-copy names the field holding the show-once value.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    var field = document.querySelector(button.getAttribute("data-copy"));
    if (!field) return;
    var status = statusFor(button);
    var done = function (ok) {
      if (status) status.textContent = ok ? "Copied to the clipboard." : "Select the text and copy it with your keyboard.";
      if (ok) button.classList.add("copied");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(function () { done(true); }, function () { done(fallbackCopy(field)); });
    } else {
      done(fallbackCopy(field));
    }
  });

  // Selecting a show-once value in one click makes manual copying easy too.
  document.addEventListener("focusin", function (event) {
    if (event.target.matches && event.target.matches("textarea.secret-value")) event.target.select();
  });

  // Keep the textarea as tall as its value so a key is never cut on a phone. Only the
  // rows attribute changes: an inline style would be refused by the page's CSP.
  function fit(root) {
    (root || document).querySelectorAll("textarea.secret-value").forEach(function (area) {
      area.rows = 1;
      while (area.scrollHeight > area.clientHeight + 1 && area.rows < 6) area.rows += 1;
    });
  }
  document.addEventListener("DOMContentLoaded", function () { fit(); });
  document.addEventListener("htmx:afterSettle", function (event) { fit(event.target); });
  window.addEventListener("resize", function () { fit(); });
})();
