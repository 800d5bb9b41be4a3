// Presence: who is online now (header #presence), and a notice when a colleague assigns you a chat.
// Refreshed on the inbox's live events (inbox.js re-dispatches them as "streife:update") and every 30 s
// (a request counts for two minutes, so people also go offline without an event).
(function () {
  "use strict";
  const box = document.getElementById("presence");
  if (!box) return;
  const me = (document.querySelector(".bar .who") || {}).textContent || "";
  let running = false;
  let again = false;

  async function refresh() {
    if (running) { again = true; return; } // a change during a fetch is fetched once more afterwards
    running = true;
    try {
      do {
        again = false;
        const response = await fetch("/inbox/presence", { credentials: "same-origin", cache: "no-store" });
        if (response.ok && !response.redirected) box.innerHTML = await response.text();
      } while (again);
    } catch (err) {
      // offline for a moment: keep the last state
    } finally {
      running = false;
    }
  }

  function notice(data) {
    let note = document.getElementById("assigned-notice");
    if (!note) {
      note = document.createElement("p");
      note.id = "assigned-notice";
      note.className = "banner assigned-notice";
      note.setAttribute("role", "status");
      const bar = document.querySelector("header.bar");
      bar.parentNode.insertBefore(note, bar.nextSibling);
    }
    note.textContent = "";
    const link = document.createElement("a");
    link.href = "/inbox/c/" + encodeURIComponent(String(data.conversation_id));
    link.textContent = "Chat #" + data.conversation_id;
    note.append("📌 " + String(data.by) + " hat dir ", link, " zugewiesen.");
  }

  document.addEventListener("streife:live", refresh); // our own stream opened (we do not hear ourselves arrive)
  document.addEventListener("streife:update", function (event) {
    const data = event.detail || {};
    if (data.kind === "presence") refresh();
    if (data.kind === "assigned" && data.officer === me && data.by !== me) notice(data);
  });
  refresh();
  setInterval(refresh, 30000);
})();
