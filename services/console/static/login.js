// Sign-in: POST /api/auth/login sets the HttpOnly session cookie; then back to where the user was going.
"use strict";
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("error");
  error.classList.remove("show");
  const button = document.getElementById("signin");
  button.disabled = true;
  try {
    const response = await fetch("/api/auth/login", {
      method: "POST", headers: {"Content-Type": "application/json"}, credentials: "same-origin",
      body: JSON.stringify({username: document.getElementById("username").value,
                            password: document.getElementById("password").value}),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.detail || `sign-in failed (${response.status})`);
    }
    const next = new URLSearchParams(location.search).get("next") || "/";
    location.href = next.startsWith("/") && !next.startsWith("//") ? next : "/";
  } catch (exc) {
    error.textContent = exc.message;
    error.classList.add("show");
    button.disabled = false;
  }
});
