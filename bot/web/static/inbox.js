// Officer inbox: keep the live part of the page fresh from server-sent events.
// streifeLive(live, options) does it for any live part: comments.js uses it for the comment pages.
(function () {
  "use strict";

  // options.wants(data, alarm): refresh on this event?  options.busy(): hold a refresh back (a form in use)
  // options.swap(html): put the new fragment in (default: replace the live part's content)
  function streifeLive(live, options) {
    const status = document.getElementById("live-status");
    const banner = document.getElementById("alert-banner");
    const fragment = live.dataset.fragment;
    const title = document.title;
    const busy = options.busy || function () { return false; };
    const swap = options.swap || function (html) { live.innerHTML = html; };
    let running = false;
    let again = false;

    async function refresh() {
      if (running || busy()) { again = true; return; }
      running = true;
      try {
        do {
          again = false;
          const response = await fetch(fragment, { credentials: "same-origin", cache: "no-store" });
          if (response.redirected || response.status === 401 || response.status === 404) { window.location.reload(); return; }
          if (response.ok) {
            swap(await response.text());
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
      document.dispatchEvent(new CustomEvent("streife:update", { detail: data })); // presence.js, ...
      if (data.escalated) alarm();
      if (options.wants(data, alarm)) refresh();
    });
    source.onerror = function () {
      status.textContent = "○ getrennt, verbinde neu …";
      document.body.dataset.live = "off";
    };
    setInterval(refresh, 30000); // waiting times (and a comment's 7-day window) keep counting
    return refresh;
  }

  window.streifeLive = streifeLive;
  const live = document.getElementById("live");
  if (!live) return;
  const onlyConversation = live.dataset.conversation;
  streifeLive(live, {
    wants: function (data) { return !onlyConversation || String(data.conversation_id) === onlyConversation; },
  });
})();
