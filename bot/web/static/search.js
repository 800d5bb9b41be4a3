// Search hits on the conversation page (bot/web/search.py links here with ?treffer=<message id>&q=<words>):
// the hit message is anchored (#m<id>, marked by CSS :target) and the searched words in it get <mark>.
// Text is only split into text nodes and wrapped, never parsed as HTML. Umlauts and case are ignored as in FTS5.
(function () {
  "use strict";
  const params = new URLSearchParams(location.search);
  const hit = params.get("treffer");
  const words = (params.get("q") || "").match(/[\p{L}\p{N}]+/gu) || [];
  if (!hit || !/^\d+$/.test(hit)) return;

  function fold(ch) { return ch.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase(); }

  function markIn(node, tokens) {
    const text = node.nodeValue;
    let folded = "";
    const origin = []; // folded index -> original index
    for (let i = 0; i < text.length; i++) {
      const f = fold(text[i]);
      for (let k = 0; k < f.length; k++) origin.push(i);
      folded += f;
    }
    const ranges = [];
    for (const token of tokens) {
      let at = folded.indexOf(token);
      while (at !== -1) {
        const before = at === 0 ? "" : folded[at - 1];
        if (!/[\p{L}\p{N}]/u.test(before)) {
          let end = origin[at + token.length - 1] + 1;
          while (end < text.length && /[\p{L}\p{N}]/u.test(text[end])) end++; // prefix: mark the whole word
          ranges.push([origin[at], end]);
        }
        at = folded.indexOf(token, at + token.length);
      }
    }
    ranges.sort((a, b) => b[0] - a[0]); // from the end, so earlier offsets stay valid
    let last = Infinity;
    for (const [start, end] of ranges) {
      if (end > last) continue; // overlapping
      const middle = node.splitText(start);
      middle.splitText(end - start);
      const mark = document.createElement("mark");
      mark.textContent = middle.nodeValue;
      middle.replaceWith(mark);
      last = start;
    }
  }

  function apply() {
    const message = document.getElementById("m" + hit);
    if (!message) return;
    message.classList.add("search-hit");
    const box = message.querySelector(".text");
    if (!box || box.querySelector("mark") || !words.length) return;
    const tokens = words.map(fold);
    for (const node of Array.from(box.childNodes)) if (node.nodeType === Node.TEXT_NODE) markIn(node, tokens);
  }

  document.addEventListener("DOMContentLoaded", function () {
    apply();
    const live = document.getElementById("live");
    if (live) new MutationObserver(apply).observe(live, { childList: true, subtree: true });
  });
})();
