// Comments under posts (bot/web/comments.py): keep the list or the one comment fresh from server-sent events.
// Only on the comment pages (#comments-live); the loop itself is inbox.js's streifeLive.
(function () {
  "use strict";
  const live = document.getElementById("comments-live");
  if (!live || document.getElementById("live") || !window.streifeLive) return;
  const onlyComment = live.dataset.comment;

  function busy() {
    // an officer ticking the delete confirmation must not lose it to a refresh
    return live.querySelector("input[name=confirm]:checked") !== null;
  }

  function swap(html) {
    // folded sections the officer opened stay open
    const open = Array.from(live.querySelectorAll("details[open]"), (d) => d.className);
    live.innerHTML = html;
    live.querySelectorAll("details").forEach((d) => { if (open.includes(d.className)) d.open = true; });
  }

  window.streifeLive(live, {
    busy: busy,
    swap: swap,
    wants: function (data, alarm) {
      if (data.kind !== "comment") return false;
      if (data.need === 0 && !onlyComment) alarm();
      return !onlyComment || String(data.comment_id) === onlyComment;
    },
  });
})();
