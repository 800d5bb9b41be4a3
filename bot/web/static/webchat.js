// Web chat: a citizen writes, the transcript (bot and officer replies) updates live.
// A message stays in the box until the server took it: a busy server (503) is asked again with the
// same id (it drops duplicates), a limit (429) is explained. The citizen can end and delete the chat.
(function () {
  "use strict";
  const main = document.querySelector("main.chat");
  const list = document.getElementById("messages");
  const buttons = document.getElementById("buttons");
  const form = document.getElementById("composer");
  const input = document.getElementById("text");
  const status = document.getElementById("status");
  const endButton = document.getElementById("end-chat");
  const endConfirm = document.getElementById("end-confirm");
  const ended = document.getElementById("ended");
  const AUTHORS = { citizen: "Du", bot: "Bot", officer: "Team" };
  const ATTEMPTS = 7;
  let running = false;
  let again = false;
  let sending = false;
  let source = null;
  let poller = null;

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function wait(seconds) {
    return new Promise(function (resolve) { setTimeout(resolve, seconds * 1000); });
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
      if (pair[1] === "emergency" || pair[1] === "self_harm") button.className = "danger";
      button.addEventListener("click", function () { send({ text: pair[0], button: pair[1] }); });
      return button;
    }));
    document.body.dataset.messages = String(data.messages.length);
    list.lastElementChild && list.lastElementChild.scrollIntoView({ block: "end" });
  }

  async function load() {
    if (document.body.dataset.ended) return;
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

  // Send one message; true once the server took it. The same id on every try.
  async function send(payload) {
    payload.id = uuid();
    status.textContent = "wird gesendet …";
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      let response;
      try {
        response = await fetch("/chat/messages", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(payload),
        });
      } catch (err) {
        status.textContent = "Keine Verbindung, neuer Versuch … Im Notfall: 110.";
        document.body.dataset.retries = String(attempt + 1);
        await wait(attempt + 1);
        continue;
      }
      if (response.ok) {
        status.textContent = "";
        load();
        return true;
      }
      if (response.status === 503) {
        const after = Number(response.headers.get("Retry-After")) || 1;
        status.textContent = "Gerade klemmt es bei uns, neuer Versuch … Deine Nachricht bleibt im Feld. Im Notfall: 110.";
        document.body.dataset.retries = String(attempt + 1);
        await wait(Math.min(after, attempt + 1));
        continue;
      }
      let body = {};
      try { body = await response.json(); } catch (err) { body = {}; }
      status.textContent = body.message || "Das hat nicht geklappt. Lade die Seite neu. Im Notfall: 110.";
      load();
      return false;
    }
    status.textContent = "Deine Nachricht ist noch nicht angekommen. Sie steht noch im Feld: schick sie gleich noch einmal. Im Notfall: 110.";
    return false;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || sending) return;
    sending = true;
    try {
      const taken = await send({ text: text });
      if (taken && input.value.trim() === text) input.value = "";
    } finally {
      sending = false;
    }
  });

  function connect() {
    source = new EventSource("/chat/events");
    source.addEventListener("hello", function () {
      document.body.dataset.live = "on";
      if (poller) { clearInterval(poller); poller = null; }
      load();
    });
    source.addEventListener("update", load);
    source.onerror = function () {
      document.body.dataset.live = "off";
      if (source.readyState === EventSource.CLOSED && !poller && !document.body.dataset.ended) {
        // refused (too many live streams): ask for the transcript now and then, and try live again later
        status.textContent = main.dataset.streamsText || "";
        poller = setInterval(load, 10000);
        setTimeout(connect, 60000);
      }
    };
  }

  endButton.addEventListener("click", function () {
    endButton.hidden = true;
    endConfirm.hidden = false;
  });
  document.getElementById("end-no").addEventListener("click", function () {
    endConfirm.hidden = true;
    endButton.hidden = false;
  });
  document.getElementById("end-yes").addEventListener("click", async function () {
    let response;
    try {
      response = await fetch("/chat/delete", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: "{}",
      });
    } catch (err) {
      response = null;
    }
    if (!response || !response.ok) {
      status.textContent = "Das Löschen hat nicht geklappt. Versuch es bitte gleich noch einmal.";
      return;
    }
    const body = await response.json();
    document.body.dataset.ended = "yes";
    if (source) source.close();
    if (poller) clearInterval(poller);
    list.replaceChildren();
    buttons.replaceChildren();
    input.value = "";
    form.hidden = true;
    endConfirm.hidden = true;
    status.textContent = "";
    document.getElementById("ended-text").textContent = body.message;
    ended.hidden = false;
  });

  connect();
  load();
})();
