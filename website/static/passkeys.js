// Passkeys (WebAuthn): adding one on the account page, signing in with one on the log-in page
// (a button, and the browser's own offer in the username field: conditional UI), using one
// as the second step after a password, and proving an account an upstream identity links to. The server makes every challenge and checks every
// answer; this script only carries them between it and navigator.credentials.
"use strict";

(function () {
  if (window.__passkeysLoaded) return; // included by several parts of one page
  window.__passkeysLoaded = true;

  var supported = !!(window.PublicKeyCredential && navigator.credentials && window.isSecureContext);

  function toBytes(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    var binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map(function (item) {
      return Object.assign({}, item, { id: toBytes(item.id) });
    });
  }

  // py_webauthn's options_to_json, with base64url strings, into what the browser takes.
  function creationOptions(json) {
    return Object.assign({}, json, {
      challenge: toBytes(json.challenge),
      user: Object.assign({}, json.user, { id: toBytes(json.user.id) }),
      excludeCredentials: withIds(json.excludeCredentials),
    });
  }

  function requestOptions(json) {
    return Object.assign({}, json, {
      challenge: toBytes(json.challenge),
      allowCredentials: withIds(json.allowCredentials),
    });
  }

  // A PublicKeyCredential as the JSON py_webauthn parses (WebAuthn level 3's toJSON shape).
  function credentialJSON(credential) {
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: { clientDataJSON: toBase64url(response.clientDataJSON) },
    };
    if (response.attestationObject) {
      json.response.attestationObject = toBase64url(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      json.response.authenticatorData = toBase64url(response.authenticatorData);
      json.response.signature = toBase64url(response.signature);
      if (response.userHandle) json.response.userHandle = toBase64url(response.userHandle);
    }
    return json;
  }

  // POST JSON with the page's CSRF token; resolves to the answer, rejects with its message.
  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body || {}),
    }).then(function (response) {
      return response.json().catch(function () {
        return { error: "Something went wrong. Reload the page and try again." };
      }).then(function (data) {
        if (!response.ok) throw new Error(data.error || "Something went wrong. Reload the page and try again.");
        return data;
      });
    }, function () {
      throw new Error("The server could not be reached. Check your connection and try again.");
    });
  }

  // The message for a failed navigator.credentials call, or null when it was only aborted.
  function browserProblem(error) {
    if (error && error.name === "AbortError") return null;
    if (error && error.name === "NotAllowedError") return "The passkey request was cancelled or timed out.";
    if (error && error.name === "InvalidStateError") return "This device already holds a passkey for your account.";
    if (error && error.name === "SecurityError") return "Passkeys are not available on this address of the site.";
    return (error && error.message) || "The passkey could not be used.";
  }

  function showError(box, message) {
    var element = box.querySelector("[data-passkey-error]");
    if (!element) return;
    element.textContent = message || "";
    element.hidden = !message;
  }

  // Account page: name the new passkey, create it, send it to be checked and stored.
  function setUpRegistration(form) {
    if (!supported) return;
    form.hidden = false;
    var unsupported = form.parentNode.querySelector("[data-passkey-unsupported]");
    if (unsupported) unsupported.hidden = true;
    var button = form.querySelector("button[type=submit]");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var name = form.querySelector("input[name=name]").value.trim();
      if (!name) {
        showError(form, "Give the passkey a name, such as “Work laptop”.");
        return;
      }
      showError(form, "");
      button.disabled = true;
      var csrf = form.getAttribute("data-csrf");
      post(form.getAttribute("data-options-url"), csrf).then(function (options) {
        return navigator.credentials.create({ publicKey: creationOptions(options) });
      }).then(function (credential) {
        return post(form.getAttribute("data-register-url"), csrf, { name: name, credential: credentialJSON(credential) });
      }).then(function (answer) {
        window.location.assign(answer.redirect);
      }).catch(function (error) {
        showError(form, browserProblem(error));
        button.disabled = false;
      });
    });
  }

  // One ceremony with navigator.credentials.get: options, the browser, the answer checked.
  // ``onOptions`` hears the options' timeout (ms), for the conditional request to renew them.
  function assert(box, mediation, signal, onOptions) {
    var csrf = box.getAttribute("data-csrf");
    return post(box.getAttribute("data-options-url"), csrf).then(function (options) {
      var request = { publicKey: requestOptions(options) };
      if (mediation) request.mediation = mediation;
      if (signal) request.signal = signal;
      if (onOptions) onOptions(options.timeout);
      return navigator.credentials.get(request);
    }).then(function (credential) {
      var next = box.getAttribute("data-next") || "";
      return post(box.getAttribute("data-answer-url"), csrf, { credential: credentialJSON(credential), next: next });
    }).then(function (answer) {
      window.location.assign(answer.redirect);
    });
  }

  // Log-in page: a button, and (where the browser can) passkeys offered in the username field.
  function setUpSignIn(box) {
    if (!supported) return;
    box.hidden = false;
    var button = box.querySelector("[data-passkey-button]");
    var conditional = null;
    var renewal = null;

    function stopConditional() {
      window.clearTimeout(renewal);
      if (conditional) conditional.abort();
      conditional = null;
    }

    // The request waits for the person to pick a passkey in the username field; its challenge
    // is renewed shortly before the server would refuse it as expired. After a failure it is
    // not restarted (the button still works), so a refused passkey cannot loop.
    function startConditional() {
      if (!PublicKeyCredential.isConditionalMediationAvailable) return;
      PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
        if (!available) return;
        var controller = new AbortController();
        conditional = controller;
        assert(box, "conditional", controller.signal, function (timeout) {
          renewal = window.setTimeout(function () {
            if (conditional !== controller) return;
            stopConditional();
            startConditional();
          }, Math.max((timeout || 300000) - 15000, 15000));
        }).catch(function (error) {
          if (controller.signal.aborted) return;
          var message = browserProblem(error);
          if (message && error.name !== "NotAllowedError") showError(box, message);
        });
      });
    }

    button.addEventListener("click", function () {
      stopConditional();
      showError(box, "");
      button.disabled = true;
      assert(box, null, null).catch(function (error) {
        showError(box, browserProblem(error));
        button.disabled = false;
      });
    });
    startConditional();
  }

  // Second step after the password, or the proof of the account to link: a button that asks
  // for one of the account's passkeys.
  function setUpAccountPasskey(box) {
    if (!supported) return;
    box.hidden = false;
    var unsupported = box.parentNode.querySelector("[data-passkey-unsupported]");
    if (unsupported) unsupported.hidden = true;
    var button = box.querySelector("[data-passkey-button]");
    button.addEventListener("click", function () {
      showError(box, "");
      button.disabled = true;
      assert(box, null, null).catch(function (error) {
        showError(box, browserProblem(error));
        button.disabled = false;
      });
    });
  }

  function setUp() {
    document.querySelectorAll("[data-passkey-register]").forEach(setUpRegistration);
    document.querySelectorAll("[data-passkey-sign-in]").forEach(setUpSignIn);
    document.querySelectorAll("[data-passkey-second-factor], [data-passkey-proof]").forEach(setUpAccountPasskey);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
