// Comments under posts (bot/web/comments.py): keep the list or the one comment fresh from server-sent events.
// Only on the comment pages (#comments-live); every other inbox page is kept fresh by inbox.js.
(function () {
  "use strict";
  const live = document.getElementById("comments-live");
  if (!live || document.getElementById("live")) return;
  const status = document.getElementById("live-status");
  const banner = document.getElementById("alert-banner");
  const fragment = live.dataset.fragment;
  const onlyComment = live.dataset.comment;
  const title = document.title;
  let running = false;
  let again = false;

  function busy() {
    // an officer ticking the delete confirmation must not lose it to a refresh
    const box = live.querySelector("input[name=confirm]:checked");
    return box !== null;
  }

  async function refresh() {
    if (running) { again = true; return; }
    if (busy()) { again = true; return; }
    running = true;
    try {
      do {
        again = false;
        const response = await fetch(fragment, { credentials: "same-origin", cache: "no-store" });
        if (response.redirected || response.status === 401 || response.status === 404) { window.location.reload(); return; }
        if (response.ok) {
          const open = Array.from(live.querySelectorAll("details[open]"), (d) => d.className);
          live.innerHTML = await response.text();
          live.querySelectorAll("details").forEach((d) => { if (open.includes(d.className)) d.open = true; });
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
    refresh();
  });
  source.addEventListener("update", function (event) {
    const data = JSON.parse(event.data);
    if (data.escalated) alarm();
    if (data.kind !== "comment") return;
    if (data.need === 0 && !onlyComment) alarm();
    if (onlyComment && String(data.comment_id) !== onlyComment) return;
    refresh();
  });
  source.onerror = function () {
    status.textContent = "○ getrennt, verbinde neu …";
    document.body.dataset.live = "off";
  };
  setInterval(refresh, 30000); // times and the 7-day window keep moving
})();
