// Deliveries page, progressive enhancement only: without this file the page
// shows the state at load time and a Refresh link. While a delivery is queued,
// running or waiting, poll the progress endpoint about once a second and
// update the rows in place (no inline styles: <progress> carries the value).
document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("deliveries");
  if (!table) return;
  const url = table.dataset.progressUrl;
  const rows = new Map();
  for (const row of table.querySelectorAll("tr[data-delivery]")) rows.set(row.dataset.delivery, row);
  const refresh = document.querySelector(".refresh-link");
  if (refresh) refresh.hidden = true;

  const setText = (row, field, text) => {
    const el = row.querySelector(`[data-field="${field}"]`);
    if (el && el.textContent !== text) el.textContent = text;
  };

  const update = (item) => {
    const row = rows.get(String(item.id));
    if (!row) return;
    const label = row.querySelector('[data-field="state_label"]');
    if (label) {
      label.textContent = item.state_label;
      label.className = `badge state-${item.state}`;
    }
    const bar = row.querySelector('[data-field="percent"]');
    if (bar) {
      bar.value = item.percent;
      bar.textContent = `${item.percent}%`;
    }
    setText(row, "files", `${item.files_verified}/${item.files_total} files verified`);
    setText(row, "bytes_text", item.bytes_text);
    setText(row, "speed_text", item.speed_text);
    setText(row, "attempts", String(item.attempts));
    setText(row, "last_error", item.last_error || "");
    const when = item.next_attempt_at ? new Date(item.next_attempt_at) : null;
    setText(row, "waiting", when ? `waiting to retry at ${when.toLocaleString()}` : "");
  };

  let timer = null;
  const poll = async () => {
    timer = null;
    if (document.hidden) return schedule(3000);
    try {
      const ids = Array.from(rows.keys()).join(",");
      const resp = await fetch(`${url}?ids=${ids}`, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!resp.ok) return schedule(5000);
      const body = await resp.json();
      body.deliveries.forEach(update);
      const summary = document.getElementById("deliveries-summary");
      if (summary && body.summary && summary.textContent !== body.summary) summary.textContent = body.summary;
      schedule(body.active ? 1000 : 10000);
    } catch (err) {
      schedule(5000);
    }
  };
  const schedule = (ms) => {
    if (!timer) timer = setTimeout(poll, ms);
  };
  schedule(table.dataset.active === "1" ? 1000 : 10000);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) {
      clearTimeout(timer);
      timer = null;
      schedule(200);
    }
  });
});
