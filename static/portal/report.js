// Recordings report, progressive enhancement only: the page works without it.
// Only one video plays at a time.
document.addEventListener("DOMContentLoaded", () => {
  const videos = Array.from(document.querySelectorAll("table.sessions video"));
  for (const video of videos) {
    video.addEventListener("play", () => {
      for (const other of videos) {
        if (other !== video && !other.paused) other.pause();
      }
    });
  }
});
