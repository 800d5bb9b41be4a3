// Officer inbox: keep the live part of the page fresh from server-sent events.
(function () {
  "use strict";
  const live = document.getElementById("live");
  const status = document.getElementById("live-status");
  const banner = document.getElementById("alert-banner");
  if (!live) return;
  const fragment = live.dataset.fragment;
  const onlyConversation = live.dataset.conversation;
  const title = document.title;
  let running = false;
  let again = false;

  async function refresh() {
    if (running) { again = true; return; }
    running = true;
    try {
      do {
        again = false;
        const response = await fetch(fragment, { credentials: "same-origin", cache: "no-store" });
        if (response.redirected || response.status === 401 || response.status === 404) { window.location.reload(); return; }
        if (response.ok) {
          live.innerHTML = await response.text();
          document.body.dataset.refreshed = String(Date.now());
        }
      } while (again);
    } catch (err) {
      status.textContent = "○ Aktualisierung fehlgeschlagen";
    } finally {
      running = false;
    }
  }

  function alarm() {
    banner.hidden = false;
    document.title = "🚨 " + title;
  }
  banner.addEventListener("click", function () { banner.hidden = true; document.title = title; });

  const source = new EventSource("/inbox/events");
  source.addEventListener("hello", function () {
    status.textContent = "● live";
    document.body.dataset.live = "on";
    document.dispatchEvent(new CustomEvent("streife:live")); // presence.js: this page is live now
    refresh();
  });
  source.addEventListener("update", function (event) {
    const data = JSON.parse(event.data);
    document.dispatchEvent(new CustomEvent("streife:update", { detail: data })); // presence.js, comments.js, ...
    if (data.escalated) alarm();
    if (onlyConversation && String(data.conversation_id) !== onlyConversation) return;
    refresh();
  });
  source.onerror = function () {
    status.textContent = "○ getrennt, verbinde neu …";
    document.body.dataset.live = "off";
  };
  setInterval(refresh, 30000); // waiting times keep counting
})();
