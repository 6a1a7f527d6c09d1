/* Vigil pages: small helpers, same origin, no inline script, nothing required to use a page.
 *
 *   [data-copy]          button: copies the text of the element its value names (an id);
 *                        shown only where the Clipboard API works; says "copied" in [data-copy-status]
 *   time[datetime]       shown in the browser's own time zone and language; the zone is also kept
 *                        in a cookie so the next page is rendered in it by the server: the cookie
 *                        named by this script's data-time-zone-cookie ("__Host-vigil_tz" under an
 *                        https issuer, "vigil_tz" in development), Path=/, Secure over https
 *   form[data-submit-once]  sent once: a second click (a double click) while the first is on its
 *                        way sends nothing. The server still takes a repeat that does arrive (a
 *                        retry, a page without scripts) as the same request; this spares the
 *                        browser a second answer that renews the session under the first's feet.
 */
(function () {
  "use strict";

  var script = document.currentScript;  // only while this file runs, not in its listeners
  var zoneCookie = (script && script.getAttribute("data-time-zone-cookie")) || "vigil_tz";

  function setupCopy() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source || !navigator.clipboard || !window.isSecureContext) { return; }
      button.hidden = false;
      button.addEventListener("click", function () {
        var status = document.querySelector("[data-copy-status]");
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          if (status) { status.textContent = button.getAttribute("data-copied") || "Copied"; }
        }, function () {
          if (status) { status.textContent = button.getAttribute("data-copy-failed") || ""; }
        });
      });
    });
  }

  function setupSubmitOnce() {
    document.querySelectorAll("form[data-submit-once]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (form.getAttribute("data-submitting") === "1") { event.preventDefault(); return; }
        form.setAttribute("data-submitting", "1");
      });
    });
    window.addEventListener("pageshow", function (event) {  // back to a page kept in memory
      if (!event.persisted) { return; }
      document.querySelectorAll("form[data-submitting]").forEach(function (form) {
        form.removeAttribute("data-submitting");
      });
    });
  }

  function browserZone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return ""; }
  }

  function rememberZone(zone) {
    if (!zone || !/^[A-Za-z0-9_+\-\/]{1,64}$/.test(zone)) { return; }
    // A __Host- or __Secure- name is set only with Secure (RFC 6265bis §4.1.3); __Host- also
    // only host-only (no Domain) with Path=/, which this cookie always is.
    var prefixed = /^__(host|secure)-/i.test(zoneCookie);
    var secure = (prefixed || window.location.protocol === "https:") ? "; Secure" : "";
    document.cookie = zoneCookie + "=" + zone + "; Path=/; Max-Age=31536000; SameSite=Lax" + secure;
  }

  function localTimes(zone) {
    var lang = document.documentElement.lang || undefined;
    var format;
    try {
      format = new Intl.DateTimeFormat(lang, {
        year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
        timeZone: zone, timeZoneName: "short"
      });
    } catch (e) { return; }
    document.querySelectorAll("time[datetime][data-local]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime())) { return; }
      el.textContent = format.format(when);
      el.setAttribute("data-zone", zone);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupCopy();
    setupSubmitOnce();
    var zone = browserZone();
    rememberZone(zone);
    if (zone && zone !== document.documentElement.getAttribute("data-time-zone")) { localTimes(zone); }
  });
})();
