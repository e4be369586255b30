// ghostread's browser client: the other readers of a post as ghosts in
// the margin, live. Plain JavaScript modules, no dependencies. The wire
// contract is docs/PROTOCOL.md; these modules only speak it. Each part
// keeps its own state and reaches the others through `page`, filled in
// here before anything runs:
//   session     who this reader is to the server (hello, token)
//   tabs        one reader per browser: the leader tab and the others
//   connection  the stream, long-polling, goodbye
//   presence    where this reader reads, away, letting go
//   room        the server's events, applied
//   layout, drawing, crowd  the ghosts and bands in the margin
//   controls    counters, switches, announcements
import { connection } from "./connection.js";
import { controls } from "./controls.js";
import { drawing } from "./drawing.js";
import { layout } from "./layout.js";
import { presence } from "./presence.js";
import { room } from "./room.js";
import { session } from "./session.js";
import { tabs } from "./tabs.js";

/** Starts the client on one page. `env` says where things are: `slug` and
 * `blocks` (the marked block elements, in order) and `blockCount`;
 * `article`, whose size changes are watched; `lane`, where ghosts are
 * drawn, inside `reader`, whose box is the lanes' coordinate system;
 * `controls`, where the switches and the announcer go; `root`, where the
 * `[data-now]` and `[data-total]` counters are; `hideRoot`, which takes the
 * `ghosts-hidden` class; `base`, the server's origin ("" for this one);
 * `http1`, whether the server is reached over HTTP/1.1; and
 * `beforeMeasure`, called before each layout pass. ghostread's own pages
 * and embedded ones (embed.js) differ only in that `env`. */
export function start(env) {
  if (!window.EventSource || !window.fetch) return;
  const page = {};
  page.tabs = tabs(env, page);
  page.session = session(env.slug, page.tabs.shared());
  page.layout = layout(env);
  page.drawing = drawing(env, page);
  page.controls = controls(env, page);
  page.connection = connection(env, page);
  page.presence = presence(page);
  page.room = room(page);

  function measure() {
    page.layout.measure();
    page.drawing.redraw();
    page.presence.reportSoon();
  }

  window.addEventListener("scroll", function () {
    page.presence.noteActivity();
    page.presence.reportSoon();
  }, { passive: true });
  for (const name of ["keydown", "pointerdown", "wheel", "touchstart"]) {
    window.addEventListener(name, page.presence.noteActivity, { passive: true });
  }
  window.addEventListener("pagehide", page.tabs.closing);
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) page.tabs.back();
  });
  window.addEventListener("resize", measure, { passive: true });
  window.addEventListener("load", measure);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      page.presence.shown();
      page.drawing.redraw();
    }
    page.tabs.activityChanged();
    page.presence.reportSoon();
  });
  if (document.fonts && document.fonts.ready) document.fonts.ready.then(measure);
  for (const img of env.article.querySelectorAll("img")) {
    if (!img.complete) img.addEventListener("load", measure, { once: true });
  }
  if (window.ResizeObserver) new ResizeObserver(measure).observe(env.article);

  page.tabs.begin();
  measure();
  page.tabs.lead();
}

/** Whether the server that served `entry` speaks HTTP/1.1 (or cannot
 * tell: then the client is as careful as over HTTP/1.1). */
export function overHttp1(entry) {
  const protocol = entry ? entry.nextHopProtocol : "";
  return !protocol || protocol.indexOf("http/1") === 0;
}
