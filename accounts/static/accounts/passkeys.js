/* Vigil passkeys: WebAuthn ceremonies for the account pages (no dependencies, no inline script).
 *
 * Elements opt in with data attributes:
 *   [data-passkey-login]     button: sign in (data-purpose "login") or second factor ("second_factor")
 *   [data-passkey-autofill]  form: start conditional mediation (autofill) on the username field
 *   [data-passkey-register]  form: create a discoverable passkey (name field "name")
 *   [data-passkey-error]     where errors are shown (role="alert")
 * Each carries data-options-url and data-verify-url; data-next / data-acr are passed back.
 */
(function () {
  "use strict";

  function b64urlToBuffer(value) {
    var b64 = value.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = atob(b64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes.buffer;
  }

  function bufferToB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) { raw += String.fromCharCode(bytes[i]); }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function postJSON(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) {
          var error = new Error(data.message || message("verify", "The passkey could not be verified. Try again."));
          error.data = data;
          throw error;
        }
        return data;
      });
    });
  }

  function showError(message, name) {
    var box = document.querySelector("[data-passkey-error]");
    if (box) { box.textContent = message; box.hidden = false; box.setAttribute("data-error-name", name || ""); }
  }

  function descriptors(list) {
    return (list || []).map(function (c) {
      var d = { type: c.type, id: b64urlToBuffer(c.id) };
      if (c.transports) { d.transports = c.transports; }
      return d;
    });
  }

  function creationOptions(json) {
    var o = Object.assign({}, json);
    o.challenge = b64urlToBuffer(json.challenge);
    o.user = Object.assign({}, json.user, { id: b64urlToBuffer(json.user.id) });
    o.excludeCredentials = descriptors(json.excludeCredentials);
    return o;
  }

  function requestOptions(json) {
    var o = Object.assign({}, json);
    o.challenge = b64urlToBuffer(json.challenge);
    o.allowCredentials = descriptors(json.allowCredentials);
    return o;
  }

  function registrationJSON(cred) {
    var r = cred.response;
    return {
      id: cred.id, rawId: bufferToB64url(cred.rawId), type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: {
        clientDataJSON: bufferToB64url(r.clientDataJSON),
        attestationObject: bufferToB64url(r.attestationObject),
        transports: r.getTransports ? r.getTransports() : []
      }
    };
  }

  function assertionJSON(cred) {
    var r = cred.response;
    return {
      id: cred.id, rawId: bufferToB64url(cred.rawId), type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: {
        clientDataJSON: bufferToB64url(r.clientDataJSON),
        authenticatorData: bufferToB64url(r.authenticatorData),
        signature: bufferToB64url(r.signature),
        userHandle: r.userHandle ? bufferToB64url(r.userHandle) : null
      }
    };
  }

  var conditional = null; // AbortController of a pending autofill request

  function signIn(el, mediation) {
    var purpose = el.dataset.purpose || "login";
    var controller = new AbortController();
    if (mediation === "conditional") { conditional = controller; }
    return postJSON(el.dataset.optionsUrl, { purpose: purpose }).then(function (json) {
      var options = { publicKey: requestOptions(json), signal: controller.signal };
      if (mediation) { options.mediation = mediation; }
      return navigator.credentials.get(options);
    }).then(function (cred) {
      return postJSON(el.dataset.verifyUrl, {
        purpose: purpose, credential: assertionJSON(cred), next: el.dataset.next || "", acr: el.dataset.acr || ""
      });
    }).then(function (data) {
      window.location.assign(data.redirect);
    });
  }

  function message(name, fallback) {
    var box = document.querySelector("[data-passkey-error]");
    return (box && box.getAttribute("data-msg-" + name)) || fallback;
  }

  // A ceremony the person started (a button, the registration form): say what went wrong.
  // SecurityError means the page is not on the RP ID's host (WebAuthn L3 §5.1.3 step 8), which
  // only an operator can fix: the message names the address to open instead.
  function failure(error) {
    if (error && error.name === "AbortError") { return; }
    var name = error && error.name || "Error";
    if (error && error.data) { showError(error.message, error.data.error); return; }
    if (name === "SecurityError") { showError(message("host", "Open this page at the service's own address."), name); return; }
    showError(message("failed", "The passkey could not be used. Try again."), name);
  }

  // Autofill (conditional mediation) waits in the background: ending without a choice
  // (NotAllowedError, AbortError) is not a failure, and neither is a page on the wrong host
  // until the person asks for a passkey with the button. Only a rejected passkey is shown.
  function autofillFailure(error) {
    if (error && error.data) { showError(error.message, error.data.error); }
  }

  function setupLoginButtons() {
    document.querySelectorAll("[data-passkey-login]").forEach(function (button) {
      button.hidden = !window.PublicKeyCredential;
      button.addEventListener("click", function (event) {
        event.preventDefault();
        if (conditional) { conditional.abort(); conditional = null; }
        signIn(button, null).catch(failure);
      });
    });
  }

  function setupAutofill() {
    var form = document.querySelector("[data-passkey-autofill]");
    if (!form || !window.PublicKeyCredential || !PublicKeyCredential.isConditionalMediationAvailable) { return; }
    PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
      if (available) { signIn(form, "conditional").catch(autofillFailure); }
    });
  }

  function setupRegistration() {
    var form = document.querySelector("[data-passkey-register]");
    if (!form) { return; }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!window.PublicKeyCredential) { showError(message("unsupported", "This browser does not support passkeys.")); return; }
      var name = (form.querySelector("[name=name]") || {}).value || "";
      postJSON(form.dataset.optionsUrl, {}).then(function (json) {
        return navigator.credentials.create({ publicKey: creationOptions(json) });
      }).then(function (cred) {
        return postJSON(form.dataset.verifyUrl, { credential: registrationJSON(cred), name: name, next: form.dataset.next || "" });
      }).then(function (data) {
        window.location.assign(data.redirect);
      }).catch(failure);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupLoginButtons();
    setupRegistration();
    setupAutofill();
  });
})();
