// Reply templates (Textbausteine): "/" plus a short name in the reply box, or the list under it.
// The reply form sits outside the live part of the page (#live), so a refresh never wipes it.
(function () {
  "use strict";

  // The page of all templates: ask before deleting one.
  document.querySelectorAll("form.textblock-delete").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      const name = form.querySelector("button").dataset.name || "";
      if (!window.confirm("Textbaustein /" + name + " wirklich löschen?")) event.preventDefault();
    });
  });

  const picker = document.querySelector(".textblock-picker[data-source]");
  const reply = document.getElementById("reply-text");
  if (!picker || !reply) return;
  const select = document.getElementById("textblock-select");
  const insertButton = document.getElementById("textblock-insert");
  const suggest = document.getElementById("textblock-suggest");
  const LANG = { de: "DE", en: "EN" };
  let blocks = []; // best fitting first (the server orders them by the chat's intent, then its language)
  let shown = []; // the suggestions under the reply box
  let chosen = 0;
  let dismissed = null; // the "/word" the officer closed with Escape

  function label(block) {
    return "/" + block.name + " · " + block.title + " (" + (LANG[block.language] || block.language) + ")";
  }

  async function load() {
    try {
      const response = await fetch(picker.dataset.source, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) return;
      blocks = (await response.json()).textblocks;
    } catch (err) {
      return;
    }
    const picked = select.value === "" ? null : select.options[select.selectedIndex].textContent;
    select.length = 1;
    blocks.forEach(function (block, index) {
      const option = document.createElement("option");
      option.value = String(index);
      option.textContent = label(block);
      option.title = block.text;
      select.appendChild(option);
      if (option.textContent === picked) option.selected = true;
    });
    picker.dataset.ready = "true";
  }

  // The "/word" right before the caret, if the officer is typing one.
  function slashWord() {
    const caret = reply.selectionStart;
    if (caret !== reply.selectionEnd) return null;
    const match = /(^|\s)\/([\p{L}\p{N}-]*)$/u.exec(reply.value.slice(0, caret));
    if (!match) return null;
    return { start: caret - match[2].length - 1, end: caret, query: match[2].toLowerCase() };
  }

  function matching(query) {
    const first = blocks.filter(function (b) { return b.name.startsWith(query); });
    const more = query ? blocks.filter(function (b) {
      return !b.name.startsWith(query) && (b.name.includes(query) || b.title.toLowerCase().includes(query));
    }) : [];
    return first.concat(more);
  }

  function hide() {
    shown = [];
    suggest.hidden = true;
    suggest.replaceChildren();
  }

  function render() {
    suggest.replaceChildren();
    shown.forEach(function (block, index) {
      const item = document.createElement("li");
      item.setAttribute("role", "option");
      item.setAttribute("aria-selected", index === chosen ? "true" : "false");
      item.textContent = label(block);
      const preview = document.createElement("span");
      preview.className = "preview";
      preview.textContent = block.text;
      item.appendChild(preview);
      item.addEventListener("mousedown", function (event) {
        event.preventDefault(); // keep the caret in the reply box
        chosen = index;
        take(slashWord());
      });
      suggest.appendChild(item);
    });
    suggest.hidden = shown.length === 0;
  }

  function update() {
    const word = slashWord();
    if (!word || (dismissed !== null && dismissed === word.query)) { hide(); return; }
    dismissed = null;
    shown = matching(word.query).slice(0, 8);
    chosen = 0;
    render();
  }

  // Put text at [start, end) of the reply box, the caret after it; plain text only.
  function put(text, start, end) {
    reply.focus();
    reply.setRangeText(text, start, end, "end");
    reply.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function take(word) {
    const block = shown[chosen];
    if (!block || !word) return;
    hide();
    put(block.text, word.start, word.end);
  }

  reply.addEventListener("input", update);
  reply.addEventListener("click", update);
  reply.addEventListener("blur", function () { setTimeout(hide, 150); });
  reply.addEventListener("keydown", function (event) {
    if (suggest.hidden || !shown.length || event.isComposing) return;
    if (event.key === "Enter" || event.key === "Tab") {
      event.preventDefault();
      take(slashWord());
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      chosen = (chosen + (event.key === "ArrowDown" ? 1 : shown.length - 1)) % shown.length;
      render();
    } else if (event.key === "Escape") {
      event.preventDefault();
      const word = slashWord();
      dismissed = word ? word.query : null;
      hide();
    }
  });

  insertButton.addEventListener("click", function () {
    const block = blocks[Number(select.value)];
    if (select.value === "" || !block) return;
    const start = reply.selectionStart, end = reply.selectionEnd;
    const before = reply.value.slice(0, start);
    put((before && !/\s$/.test(before) ? " " : "") + block.text, start, end);
    select.value = "";
  });

  // A new message or a relabel can change the chat's topic, and with it the order (inbox.js relays the events).
  const conversationId = (document.getElementById("live") || {}).dataset?.conversation;
  document.addEventListener("streife:update", function (event) {
    if (conversationId && String(event.detail.conversation_id) === conversationId) load();
  });

  load();
})();
