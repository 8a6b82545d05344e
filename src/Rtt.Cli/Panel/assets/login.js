// The panel's login: the token travels in the URL fragment (never sent to a server by the browser), is posted once to
// /api/session, which spends it and sets an HttpOnly, SameSite=Strict session cookie. The fragment is cleared first.
"use strict";
(function () {
  const status = document.getElementById("login-status");
  async function login(token) {
    status.textContent = "logging in…";
    const response = await fetch("/api/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: token }),
      credentials: "same-origin",
    });
    if (response.ok) {
      location.replace("/");
      return;
    }
    let reason = response.status + "";
    try { reason = (await response.json()).error || reason; } catch (e) { /* keep the status */ }
    status.textContent = "refused: " + reason;
    status.className = "bad";
  }
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match) {
    history.replaceState(null, "", location.pathname);
    login(decodeURIComponent(match[1]));
  }
  document.getElementById("login-form").addEventListener("submit", function (e) {
    e.preventDefault();
    login(document.getElementById("token").value.trim());
  });
})();
