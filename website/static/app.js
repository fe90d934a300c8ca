// The little JavaScript the pages need: copy buttons and light form checks before submit.
// Everything works without it; the server checks every form again and has the last word.
"use strict";

(function () {
  // Copy buttons: <button data-copy-target="ID"> copies the text of #ID.
  function setUpCopyButtons() {
    if (!navigator.clipboard || !window.isSecureContext) return;
    document.querySelectorAll("[data-copy-target]").forEach(function (button) {
      var id = button.getAttribute("data-copy-target");
      var source = document.getElementById(id);
      var status = document.querySelector('[data-copy-status="' + id + '"]');
      if (!source) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          button.textContent = "Copied";
          if (status) status.textContent = "Copied to the clipboard.";
          window.setTimeout(function () {
            button.textContent = "Copy";
            if (status) status.textContent = "";
          }, 2500);
        }, function () {
          if (status) status.textContent = "Could not copy: select the text and copy it by hand.";
        });
      });
    });
  }

  var EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
  var URI_WITH_SCHEME = /^[A-Za-z][A-Za-z0-9+.\-]*:\S+$/;

  // The first problem with a field's value, or "" when it looks fine.
  function problemWith(field) {
    var value = field.value.trim();
    if (field.type === "checkbox" || field.type === "hidden" || field.type === "submit") return "";
    if (field.required && !value) return "This field is required.";
    if (!value) return "";
    var min = parseInt(field.getAttribute("minlength"), 10);
    if (min && field.value.length < min) return "Use at least " + min + " characters.";
    if (field.type === "email" && !EMAIL.test(value)) return "Enter an email address such as ada@example.com.";
    if (field.type === "url" && !/^https?:\/\/\S+$/i.test(value)) {
      return "Enter a full address starting with https://.";
    }
    if (field.hasAttribute("data-uri-lines")) {
      var lines = value.split(/\s+/);
      for (var i = 0; i < lines.length; i++) {
        if (!URI_WITH_SCHEME.test(lines[i])) {
          return lines[i] + " is not a full URI: write it like https://app.example.com/callback.";
        }
        if (lines[i].indexOf("#") !== -1) return "A redirect URI must not contain a fragment (#).";
      }
    }
    var match = field.getAttribute("data-match");
    if (match) {
      var other = field.form.querySelector('[name="' + match + '"]');
      if (other && other.value !== field.value) return "The passwords differ.";
    }
    return "";
  }

  function showProblem(field, message) {
    var wrapper = field.closest(".field");
    var id = field.id + "-error";
    var error = document.getElementById(id);
    if (!message) {
      if (error && error.hasAttribute("data-client")) error.remove();
      if (!document.getElementById(id)) {
        field.removeAttribute("aria-invalid");
        if (wrapper) wrapper.classList.remove("has-error");
        var rest = (field.getAttribute("aria-describedby") || "").split(" ").filter(function (x) {
          return x && x !== id;
        });
        if (rest.length) field.setAttribute("aria-describedby", rest.join(" "));
        else field.removeAttribute("aria-describedby");
      }
      return;
    }
    if (!error) {
      error = document.createElement("p");
      error.className = "error";
      error.id = id;
      error.setAttribute("data-client", "");
      // Right below the input, before its help text, where the server puts its messages.
      field.insertAdjacentElement("afterend", error);
    }
    error.textContent = message;
    field.setAttribute("aria-invalid", "true");
    var described = (field.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
    if (described.indexOf(id) === -1) described.push(id);
    field.setAttribute("aria-describedby", described.join(" "));
    if (wrapper) wrapper.classList.add("has-error");
  }

  function setUpFormChecks() {
    document.querySelectorAll("form[data-validate]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        var first = null;
        form.querySelectorAll("input, textarea, select").forEach(function (field) {
          var message = problemWith(field);
          showProblem(field, message);
          if (message && !first) first = field;
        });
        if (first) {
          event.preventDefault();
          first.focus();
        }
      });
      // A corrected field loses its message as soon as it is right.
      form.addEventListener("input", function (event) {
        var field = event.target;
        if (field.getAttribute("aria-invalid") === "true" && !problemWith(field)) {
          var error = document.getElementById(field.id + "-error");
          if (error) error.remove();
          showProblem(field, "");
        }
      });
    });
  }

  // After the server sent a form back with problems, start where the first one is.
  function focusFirstProblem() {
    var first = document.querySelector('form [aria-invalid="true"]');
    if (first) first.focus();
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpCopyButtons();
    setUpFormChecks();
    focusFirstProblem();
  });
})();
