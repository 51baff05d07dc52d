// Progressive enhancement only: every page works without this file.
// Times: show <time> elements in the user's time zone; UTC stays on hover.
document.addEventListener("DOMContentLoaded", () => {
  const pad = (n) => String(n).padStart(2, "0");
  const utc = (d) =>
    `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
  for (const el of document.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (isNaN(when)) continue;
    if (!el.title) el.title = utc(when);
    el.textContent = when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }
});
