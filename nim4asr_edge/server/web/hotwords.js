// The hotword card: list, add, remove and search the server's hotword index, per namespace.
const $ = (id) => document.getElementById(id);

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

/** Wire the card to the server (``api``, ``setStatus`` and ``describe`` come from app.js); returns {refresh}. */
export function initHotwords({ api, setStatus, describe }) {
  const card = $("hotwords-card");
  const status = $("hw-status");
  const namespace = () => $("hw-namespace").value.trim() || "default";

  function unavailable(err) {
    if (err.status === 404) {
      card.classList.add("disabled");
      setStatus(status, "This server has no hotword index: start it with serve --hotwords INDEX_DIR.", "error");
    } else {
      setStatus(status, describe(err), "error");
    }
  }

  async function remove(text) {
    try {
      const report = await api("/v1/hotwords/remove", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ namespace: namespace(), texts: [text] }) });
      setStatus(status, report.removed ? `Removed “${text}”.` : `“${text}” was not in ${namespace()}.`, "ok");
      await refresh(false);
    } catch (err) {
      unavailable(err);
    }
  }

  async function refresh(say = true) {
    const ns = namespace();
    try {
      const data = await api(`/v1/hotwords?namespace=${encodeURIComponent(ns)}&limit=1000`);
      card.classList.remove("disabled");
      const rows = data.data.map((entry) => {
        const tr = document.createElement("tr");
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = "Remove";
        button.title = `remove “${entry.text}”`;
        button.addEventListener("click", () => remove(entry.text));
        const actions = document.createElement("td");
        actions.append(button);
        tr.append(cell(entry.text, "text"), cell(entry.weight.toFixed(1), "num"), cell(entry.phonemes, "ph"), actions);
        return tr;
      });
      if (!rows.length) {
        const tr = document.createElement("tr");
        const td = cell(`No hotwords in “${ns}”.`, "empty");
        td.colSpan = 4;
        tr.append(td);
        rows.push(tr);
      }
      $("hw-list").replaceChildren(...rows);
      if (say) setStatus(status, `${data.data.length} hotword${data.data.length === 1 ? "" : "s"} in “${ns}”.`);
    } catch (err) {
      unavailable(err);
    }
  }

  $("hw-refresh").addEventListener("click", () => refresh());
  $("hw-namespace").addEventListener("change", () => refresh());
  $("hw-add").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("hw-text").value.trim();
    const weight = Number($("hw-weight").value || "1");
    try {
      const report = await api("/v1/hotwords", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ namespace: namespace(), entries: [{ text, weight }] }) });
      if (report.skipped.length) {
        setStatus(status, `“${text}” was not added: ${report.skipped[0].reason}`, "error");
      } else {
        setStatus(status, `${report.added ? "Added" : "Updated"} “${text}” in ${namespace()}.`, "ok");
        $("hw-text").value = "";
      }
      await refresh(false);
    } catch (err) {
      unavailable(err);
    }
  });
  $("hw-search").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = $("hw-query").value.trim();
    try {
      const data = await api(`/v1/hotwords/search?q=${encodeURIComponent(q)}&namespace=${encodeURIComponent(namespace())}` +
        "&top_k=10");
      const items = data.data.map((hit) => {
        const li = document.createElement("li");
        const name = document.createElement("span");
        name.textContent = hit.text;
        const score = document.createElement("span");
        score.textContent = `${hit.score.toFixed(2)} ${hit.method}`;
        li.append(name, score);
        return li;
      });
      $("hw-hits").replaceChildren(...items);
      setStatus(status, `${items.length} hit${items.length === 1 ? "" : "s"} for “${q}” in ${namespace()}.`);
    } catch (err) {
      unavailable(err);
    }
  });
  return { refresh };
}
