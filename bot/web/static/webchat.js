// Web chat: a citizen writes, the transcript (bot and officer replies) updates live.
(function () {
  "use strict";
  const list = document.getElementById("messages");
  const buttons = document.getElementById("buttons");
  const form = document.getElementById("composer");
  const input = document.getElementById("text");
  const status = document.getElementById("status");
  const AUTHORS = { citizen: "Du", bot: "Bot", officer: "Team" };
  let running = false;
  let again = false;

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function render(data) {
    list.replaceChildren.apply(list, data.messages.map(function (m) {
      const item = document.createElement("li");
      item.className = "msg " + m.author;
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = AUTHORS[m.author] || m.author;
      const text = document.createElement("div");
      text.className = "text";
      text.textContent = m.text;
      item.append(who, text);
      return item;
    }));
    const last = data.messages[data.messages.length - 1];
    buttons.replaceChildren.apply(buttons, ((last && last.buttons) || []).map(function (pair) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = pair[0];
      button.addEventListener("click", function () { send({ text: pair[0], button: pair[1] }); });
      return button;
    }));
    document.body.dataset.messages = String(data.messages.length);
    list.lastElementChild && list.lastElementChild.scrollIntoView({ block: "end" });
  }

  async function load() {
    if (running) { again = true; return; }
    running = true;
    try {
      do {
        again = false;
        const response = await fetch("/chat/transcript", { credentials: "same-origin", cache: "no-store" });
        if (response.ok) render(await response.json());
      } while (again);
    } catch (err) {
      status.textContent = "Keine Verbindung. Im Notfall: 110.";
    } finally {
      running = false;
    }
  }

  async function send(payload) {
    payload.id = uuid(); // the same id on every retry: the server drops duplicates
    status.textContent = "wird gesendet …";
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const response = await fetch("/chat/messages", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(payload),
        });
        status.textContent = response.ok ? "" : "Das hat nicht geklappt. Lade die Seite neu. Im Notfall: 110.";
        break;
      } catch (err) {
        status.textContent = "Keine Verbindung, neuer Versuch … Im Notfall: 110.";
        await new Promise(function (resolve) { setTimeout(resolve, 1000 * (attempt + 1)); });
      }
    }
    load();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send({ text: text });
  });

  const source = new EventSource("/chat/events");
  source.addEventListener("hello", function () { document.body.dataset.live = "on"; load(); });
  source.addEventListener("update", load);
  source.onerror = function () { document.body.dataset.live = "off"; };
  load();
})();
