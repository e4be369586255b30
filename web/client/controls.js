// What the reader sees and sets besides the ghosts: the "reading now" and
// total counters, the two switches, and a rare announcement for screen
// readers.
import { read, write } from "./storage.js";

/** "Reading now" is announced to screen readers at most this often. */
const ANNOUNCE_EVERY_MS = 30000;

export function controls(env, page) {
  const footer = env.controls;
  let counts = { now: 0, total: 0 };
  toggle(footer, "ghosts", "Hide ghosts", "ghostread:hidden", function (on) {
    env.hideRoot.classList.toggle("ghosts-hidden", on);
  });
  const invisible = toggle(footer, "invisible", "Don't show me", "ghostread:invisible", function (on, changed) {
    page.drawing.invisible(on);
    // Seen or not, the reader's stream says so from its start.
    if (changed) page.presence.reconnect();
  });
  // A polite, rare announcement of how many read along (the visible count
  // changes too often to be read out).
  const announcer = document.createElement("span");
  announcer.className = "visually-hidden";
  announcer.setAttribute("aria-live", "polite");
  let announcedAt = -Infinity;
  let announced = null;
  let announceTimer = null;
  if (footer) footer.appendChild(announcer);

  /** Tells screen readers how many read along: once at first, then at
   * most every ANNOUNCE_EVERY_MS, and only if it changed. */
  function announceSoon() {
    if (announceTimer) return;
    const wait = Math.max(announcedAt + ANNOUNCE_EVERY_MS - performance.now(), 0);
    announceTimer = setTimeout(function () {
      announceTimer = null;
      if (counts.now === announced) return;
      announced = counts.now;
      announcedAt = performance.now();
      announcer.textContent = countText(counts.now) + (counts.now === 1 ? " reader" : " readers") + " reading now";
    }, wait);
  }

  return {
    invisible: function () {
      return invisible.getAttribute("aria-pressed") === "true";
    },
    counts: function () {
      return counts;
    },
    setCounts: function (now, total) {
      counts = { now: now, total: total };
      for (const el of env.root.querySelectorAll("[data-now]")) el.textContent = countText(now);
      for (const el of env.root.querySelectorAll("[data-total]")) el.textContent = countText(total);
      announceSoon();
    },
  };
}

/** A count as people read it (docs/PROTOCOL.md): exact below 1,000, then
 * "10.2k", then "1.3M", truncated as the server's pages write it. */
export function countText(n) {
  if (n < 1000) return String(n);
  const unit = n < 1000000 ? 1000 : 1000000;
  const whole = Math.floor(n / unit);
  const tenth = Math.floor(((n % unit) * 10) / unit);
  return whole + (tenth ? "." + tenth : "") + (unit === 1000 ? "k" : "M");
}

/** A switch: a button with one fixed label and `aria-pressed`, its choice
 * remembered and shared with this site's other open tabs. */
function toggle(footer, name, label, key, apply) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "ghost-toggle";
  button.dataset.toggle = name;
  button.textContent = label;
  if (footer) {
    footer.appendChild(document.createTextNode(" · "));
    footer.appendChild(button);
  }
  const set = function (on, changed) {
    button.setAttribute("aria-pressed", on ? "true" : "false");
    apply(on, changed);
  };
  button.addEventListener("click", function () {
    const on = button.getAttribute("aria-pressed") !== "true";
    write(localStorage, key, on ? "1" : null);
    set(on, true);
  });
  // Another tab changed it: the `storage` event comes to every other tab.
  window.addEventListener("storage", function (event) {
    if (event.key !== key) return;
    const on = event.newValue === "1";
    if (on !== (button.getAttribute("aria-pressed") === "true")) set(on, true);
  });
  set(read(localStorage, key) === "1", false);
  return button;
}
