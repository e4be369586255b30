// The other readers as ghosts in the lane, and this reader's own. Every
// DOM write happens in one requestAnimationFrame; positions come from the
// layout's cache only.
import { CROWD, bands as makeBands, countGhosts, othersIn } from "./crowd.js";

/** How long a fading ghost takes to go (the CSS transition's length). */
const FADE_MS = 400;
/** The longest glide between two positions of a ghost. */
const GLIDE_MAX_MS = 1000;
/** Neighbours drawn at most over the bands of a crowded room
 * (docs/PROTOCOL.md: the server names one more, in case it is this reader). */
const NEAR_SHOWN = 6;

export function drawing(env, page) {
  const lane = env.lane;
  const count = Math.max(env.blocks.length, 1);
  const reducedMotion = window.matchMedia
    ? window.matchMedia("(prefers-reduced-motion: reduce)")
    : { matches: false };
  /** Other readers by id: { color, pos, away, el, fromY, toY, shownY, t0, glide, at }. */
  const ghosts = new Map();
  /** In a crowded room, readers per block as the server counts them (this
   * reader included); null while the server sends every ghost. */
  let density = null;
  /** In a crowded room, the readers nearest this one, as the server last
   * named them (this reader left out); kept even before the room turns
   * crowded, as the two may arrive in either order. */
  let near = null;
  /** The room just turned crowded: the per-ghost mode's ghosts that are
   * not neighbours go at once, in the frame the bands come. */
  let switching = false;
  let frame = 0;
  let drawAll = true;
  const dirty = new Set();
  const bands = makeBands(lane, page.layout);

  lane.setAttribute("aria-hidden", "true");
  const own = document.createElement("div");
  own.className = "ghost";
  own.dataset.self = "";
  own.hidden = true;
  lane.appendChild(own);

  function request() {
    if (!frame) frame = requestAnimationFrame(draw);
  }

  /** Where the server counts this reader, for the bands drawn without it. */
  function mine() {
    const me = page.session.me();
    return me && !me.watching ? page.presence.lastSent() : null;
  }

  function draw(now) {
    frame = 0;
    // The ghosts of the per-ghost mode go in the same frame as the bands
    // come, so a switch of mode never shows both, or neither; those that
    // are this reader's neighbours stay where they are, as neighbours.
    if (density) {
      const keep = new Set((near || []).map(function (g) { return g.id; }));
      for (const id of Array.from(ghosts.keys())) if (!keep.has(id)) remove(id, switching);
      switching = false;
    }
    const crowded = density !== null || ghosts.size > CROWD;
    lane.classList.toggle("crowded", crowded);
    if (page.session.me()) {
      own.hidden = false;
      own.style.left = page.layout.ownLeft().toFixed(1) + "px";
    }
    let gliding = false;
    if (crowded) {
      bands.draw(density ? othersIn(density, count, mine()) : countGhosts(ghosts.values(), count));
    } else {
      bands.clear();
    }
    // Every ghost, or in a crowded room the neighbours over the bands (a
    // crowd the server sends in full is drawn as bands only).
    if (!crowded || density) {
      const targets = drawAll ? ghosts.keys() : dirty.values();
      for (const id of targets) {
        const ghost = ghosts.get(id);
        if (!ghost) continue;
        ghost.el.toggleAttribute("data-near", density !== null);
        gliding = place(ghost, now) || gliding;
      }
    }
    drawAll = false;
    dirty.clear();
    if (gliding) {
      // Still on their way: the next frame moves them on, and only them.
      for (const [id, ghost] of ghosts) if (ghost.t0 + ghost.glide > now) dirty.add(id);
      request();
    }
  }

  /** Puts a ghost where it is on its glide toward its newest position;
   * true while it is still on its way. */
  function place(ghost, now) {
    const toY = page.layout.yOf(ghost.pos);
    if (ghost.toY !== toY) {
      // A new position (or a new layout): glide from where it is shown
      // now, over about the time between its last two updates.
      ghost.fromY = ghost.shownY === null || drawAll || reducedMotion.matches ? toY : ghost.shownY;
      ghost.toY = toY;
      ghost.t0 = now;
    }
    const t = ghost.glide > 0 ? Math.min((now - ghost.t0) / ghost.glide, 1) : 1;
    const eased = 1 - (1 - t) * (1 - t);
    const y = ghost.fromY + (ghost.toY - ghost.fromY) * eased;
    if (y !== ghost.shownY) {
      ghost.shownY = y;
      ghost.el.style.transform = "translateY(" + y.toFixed(1) + "px)";
    }
    ghost.el.toggleAttribute("data-away", ghost.away);
    return t < 1;
  }

  function upsert(id, color, pos, away) {
    const me = page.session.me();
    if (me && id === me.id) return;
    const now = performance.now();
    let ghost = ghosts.get(id);
    if (!ghost) {
      const el = document.createElement("div");
      el.className = "ghost";
      el.dataset.ghost = id;
      // Fades in: it appears transparent, and the next frame shows it.
      if (!reducedMotion.matches) {
        el.dataset.entering = "";
        requestAnimationFrame(function () {
          requestAnimationFrame(function () {
            delete el.dataset.entering;
          });
        });
      }
      lane.appendChild(el);
      ghost = { color: color, pos: pos, away: false, el: el, fromY: 0, toY: null, shownY: null, t0: 0, glide: 0, at: now };
      ghosts.set(id, ghost);
    }
    if (color && ghost.color !== color) ghost.color = color;
    ghost.el.style.setProperty("--ghost", ghost.color);
    setPos(ghost, pos, now);
    ghost.away = !!away;
    dirty.add(id);
  }

  /** A ghost's newest position: it glides there over about the time since
   * its last one, so that it keeps moving until the next. */
  function setPos(ghost, pos, now) {
    if (ghost.pos !== pos) ghost.glide = reducedMotion.matches ? 0 : Math.min(now - ghost.at, GLIDE_MAX_MS);
    ghost.at = now;
    ghost.pos = pos;
  }

  /** A ghost leaves: it fades out (at once under reduced motion, or when
   * the room turns into bands). */
  function remove(id, atOnce) {
    const ghost = ghosts.get(id);
    if (!ghost) return;
    ghosts.delete(id);
    const el = ghost.el;
    if (atOnce || reducedMotion.matches || document.hidden) {
      el.remove();
      return;
    }
    el.dataset.leaving = "";
    setTimeout(function () {
      el.remove();
    }, FADE_MS);
  }

  return {
    request: request,
    /** Everything again: the layout or the whole room changed. */
    redraw: function () {
      drawAll = true;
      request();
    },
    crowded: function () {
      return density !== null;
    },
    /** This reader's own ghost, as the hello says it is. */
    greet: function (me) {
      own.dataset.ghost = me.id;
      own.style.setProperty("--ghost", me.color);
      request();
    },
    invisible: function (on) {
      own.toggleAttribute("data-invisible", on);
    },
    /** Every ghost: the room is not (or no longer) crowded. Neighbours
     * that are in it stay, as ghosts among the others. */
    snapshot: function (list) {
      density = null;
      near = null;
      const present = new Set();
      for (const g of list) {
        present.add(g.id);
        upsert(g.id, g.color, g.pos, g.away);
      }
      for (const id of Array.from(ghosts.keys())) if (!present.has(id)) remove(id);
      drawAll = true;
      request();
    },
    join: function (g) {
      upsert(g.id, g.color, g.pos, g.away);
      request();
    },
    leave: function (id) {
      remove(id);
      request();
    },
    moves: function (list) {
      const now = performance.now();
      const me = page.session.me();
      for (const m of list) {
        const ghost = ghosts.get(m.id);
        if (!ghost || (me && m.id === me.id)) continue;
        setPos(ghost, m.pos, now);
        ghost.away = !!m.away;
        dirty.add(m.id);
      }
      request();
    },
    /** The room is crowded: readers per block replace the ghosts, but
     * for the neighbours. */
    density: function (counts) {
      if (density === null) {
        switching = true;
        for (const g of near || []) upsert(g.id, g.color, g.pos, g.away);
      }
      density = counts;
      drawAll = true;
      request();
    },
    /** The readers nearest this one, in a crowded room: they come (fading
     * in), move (gliding) and go (fading out) like any ghost. */
    near: function (list) {
      const me = page.session.me();
      near = list.filter(function (g) { return !me || g.id !== me.id; }).slice(0, NEAR_SHOWN);
      if (density === null) return;
      for (const g of near) upsert(g.id, g.color, g.pos, g.away);
      drawAll = true;
      request();
    },
    /** The room as drawn, for a tab that joins later: the density, or
     * every ghost. */
    state: function () {
      if (density) return { density: density, near: near };
      const list = [];
      for (const [id, g] of ghosts) list.push({ id: id, color: g.color, pos: g.pos, away: g.away });
      return { ghosts: list };
    },
  };
}
