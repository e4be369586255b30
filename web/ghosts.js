// ghostread's browser client: the other readers of this post as ghosts in
// the margin, live. Plain JavaScript, no dependencies, loaded with `defer`.
// The wire contract is docs/PROTOCOL.md; this file only speaks it.
//
// Reads and writes of layout are kept apart: block positions are measured
// in one pass when the layout changes (resize, fonts, images), scrolling
// only reads the cached numbers, and every DOM write happens in one
// requestAnimationFrame.
//
// One reader per browser per post: the tabs of one post elect a leader
// with the Web Locks API; only the leader holds the event stream, and it
// shares every event with the other tabs over a BroadcastChannel. Any
// visible tab reports its own position with the shared token. Over
// HTTP/1.1 (six connections per site) only a visible tab may lead, so
// hidden tabs never hold a connection another page needs. Browsers
// without these APIs keep one stream and one ghost per tab.
(function () {
  "use strict";

  /** Starts the client on one page. `env` says where things are:
   * `slug` and `blocks` (the marked block elements, in order) and
   * `blockCount`; `article`, whose size changes are watched; `lane`, where
   * ghosts are drawn, inside `reader`, whose box is the lanes' coordinate
   * system; `controls`, where the switches and the announcer go; `root`,
   * where the `[data-now]` and `[data-total]` counters are; `hideRoot`,
   * which takes the `ghosts-hidden` class; `base`, the server's origin (""
   * for this one); `http1`, whether the server is reached over HTTP/1.1;
   * and `beforeMeasure`, called before each layout pass. ghostread's own
   * pages and embedded ones (embed.js) differ only in that `env`. */
  function start(env) {
    if (!window.EventSource || !window.fetch) return;
    const article = env.article;
    const lane = env.lane;
    const slug = env.slug;
    const reader = env.reader;
    const blocks = env.blocks;
    const blockCount = env.blockCount;
    /** Where the reading line sits, as a fraction of the viewport height. */
    const READING_LINE = 1 / 3;
    /** The fastest this client reports its position. */
    const SEND_EVERY_MS = 100;
    /** More ghosts than this are drawn as a density band per block, even when
     * the server sends every ghost (it does not above its --crowd). */
    const CROWD = 50;
    /** How long a fading ghost takes to go (the CSS transition's length). */
    const FADE_MS = 400;
    /** The longest glide between two positions of a ghost. */
    const GLIDE_MAX_MS = 1000;
    /** "Reading now" is announced to screen readers at most this often. */
    const ANNOUNCE_EVERY_MS = 30000;
    const TOKEN_KEY = "ghostread:token:" + slug;

    const HIDDEN_KEY = "ghostread:hidden";
    const INVISIBLE_KEY = "ghostread:invisible";
    const base = env.base + "/posts/" + encodeURIComponent(slug);
    const eventsUrl = base + "/events";
    const positionUrl = base + "/position";
    const pollUrl = base + "/poll";
    const leaveUrl = base + "/leave";
    const ticketUrl = base + "/ticket";
    /** How long a stream may take to say hello before the client polls instead. */
    const HELLO_WITHIN_MS = 4000;
    const reducedMotion = window.matchMedia
      ? window.matchMedia("(prefers-reduced-motion: reduce)")
      : { matches: false };
    /** Over HTTP/1.1 a browser opens at most six connections to a site. */
    const http1 = env.http1;

    // --- State -------------------------------------------------------------

    /** Other readers by id: { color, pos, away, el, fromY, toY, t0, glide, at }. */
    const ghosts = new Map();
    /** In a crowded room, readers per block as the server counts them (this
     * reader included); null while the server sends every ghost. */
    let density = null;
    let counts = { now: 0, total: 0 };
    let me = null; // { id, token, color, watching }
    /** The server's manners, from hello: seconds without scrolling before
     * this reader is away, and seconds a hidden tab keeps its stream. */
    let awayAfterMs = 90000;
    let letGoMs = 120000;

    // The connection, held by the leader tab only.
    let source = null;
    let reconnectTimer = null;
    let reconnectDelay = 2000;
    let helloTimer = null;
    let letGoTimer = null;
    let letGone = false;
    // Long-polling: whether this page polls instead of streaming, and the
    // number of the last answer it has.
    let polling = false;
    let pollTimer = null;
    let pollSeen = 0;

    // Layout cache, refreshed by measure(): block tops and heights relative
    // to the reader container (the lane's coordinate system), and the
    // container's top in document coordinates.
    let tops = [];
    let heights = [];
    let readerTop = 0;
    /** Where the reader's own ghost stands: the outer third of the lane, so
     * it never hides another ghost, which stand nearer the text. */
    let ownLeft = 0;

    // Position reporting.
    let lastSent = null;
    let lastSendAt = -Infinity;
    let sendTimer = null;
    let quietUntil = 0;
    /** Whether the server was last told this reader is away. */
    let awaySent = null;
    let lastActivity = performance.now();
    let idleTimer = null;

    // Drawing.
    let frame = 0;
    let drawAll = true;
    const dirty = new Set();
    const bands = [];

    // --- Tabs of this post in this browser --------------------------------

    const tabId = Math.random().toString(36).slice(2);
    const channel = window.BroadcastChannel ? new BroadcastChannel("ghostread:" + slug) : null;
    const locks = channel && navigator.locks ? navigator.locks : null;
    /** Whether this tab holds the connection (always, without the APIs). */
    let leader = !locks;
    /** Without the APIs, over HTTP/1.1: the hidden tab gave its stream up. */
    let dormant = false;
    let seeking = null; // An AbortController while waiting for the lock.
    let stepDownTimer = null;
    /** How long a hidden tab on HTTP/1.1 waits before giving its stream up. */
    const STEP_DOWN_MS = 250;
    let resign = null; // Resolving it releases the lock.
    /** The leader's view of the other tabs: { shown, active } of each. */
    const tabs = new Map();
    /** The newest position any tab of this reader reported. */
    let lastPos = null;

    function presence() {
      return { t: "presence", tab: tabId, shown: !document.hidden, active: active() };
    }

    /** Where the token is kept: for the whole browser when its tabs are
     * one reader, else for this tab alone (or two tabs would take one ghost
     * from each other). */
    function tokenStore() {
      return locks ? localStorage : sessionStorage;
    }

    function share(message) {
      if (channel && leader) channel.postMessage(message);
    }

    // --- Own ghost and the switches ------------------------------------------

    lane.setAttribute("aria-hidden", "true");
    const own = document.createElement("div");
    own.className = "ghost";
    own.dataset.self = "";
    own.hidden = true;
    lane.appendChild(own);

    const footer = env.controls;
    const hideToggle = makeToggle("ghosts", "Hide ghosts", HIDDEN_KEY, function (on) {
      env.hideRoot.classList.toggle("ghosts-hidden", on);
    });
    const invisibleToggle = makeToggle("invisible", "Don't show me", INVISIBLE_KEY, function (on, changed) {
      own.toggleAttribute("data-invisible", on);
      // Seen or not, the reader's stream says so from its start.
      if (changed && leader && !letGone) connect();
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

    /** A switch: a button with one fixed label and `aria-pressed`, its
     * choice remembered and shared with this site's other open tabs. */
    function makeToggle(name, label, key, apply) {
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
        writeStorage(localStorage, key, on ? "1" : null);
        set(on, true);
      });
      // Another tab changed it: the `storage` event comes to every other tab.
      window.addEventListener("storage", function (event) {
        if (event.key !== key) return;
        const on = event.newValue === "1";
        if (on !== (button.getAttribute("aria-pressed") === "true")) set(on, true);
      });
      set(readStorage(localStorage, key) === "1", false);
      return button;
    }

    function invisible() {
      return invisibleToggle.getAttribute("aria-pressed") === "true";
    }

    // --- Layout ------------------------------------------------------------

    /** Reads every block's box in one pass, then redraws everything. */
    function measure() {
      if (env.beforeMeasure) env.beforeMeasure();
      const box = reader.getBoundingClientRect();
      readerTop = box.top + window.scrollY;
      const laneBox = lane.getBoundingClientRect();
      ownLeft = laneBox.left + laneBox.width * 0.28;
      tops = new Array(blocks.length);
      heights = new Array(blocks.length);
      for (let i = 0; i < blocks.length; i++) {
        const rect = blocks[i].getBoundingClientRect();
        tops[i] = rect.top - box.top;
        heights[i] = rect.height;
      }
      drawAll = true;
      requestDraw();
      reportSoon();
    }

    /** Block position (e.g. 12.37) → y in the lane's coordinates. */
    function yOf(pos) {
      if (!tops.length) return 0;
      const i = Math.floor(pos);
      if (i >= tops.length) return tops[tops.length - 1] + heights[heights.length - 1];
      if (i < 0) return tops[0];
      return tops[i] + (pos - i) * heights[i];
    }

    /** The reading line → block position, per docs/PROTOCOL.md. */
    function readingPosition() {
      if (!tops.length) return 0;
      const line = window.scrollY + window.innerHeight * READING_LINE - readerTop;
      if (line <= tops[0]) return 0;
      let lo = 0;
      let hi = tops.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (tops[mid] <= line) lo = mid;
        else hi = mid - 1;
      }
      const last = tops.length - 1;
      if (lo === last && line >= tops[last] + heights[last]) return blockCount;
      const fraction = heights[lo] > 0 ? Math.min((line - tops[lo]) / heights[lo], 0.999) : 0;
      return Math.min(Math.round((lo + fraction) * 1000) / 1000, blockCount);
    }

    // --- Drawing -----------------------------------------------------------

    function requestDraw() {
      if (!frame) frame = requestAnimationFrame(draw);
    }

    function draw(now) {
      frame = 0;
      // The ghosts of the per-ghost mode go in the same frame as the bands
      // come, so a switch of mode never shows both, or neither.
      if (density) for (const id of Array.from(ghosts.keys())) remove(id, true);
      const crowded = density !== null || ghosts.size > CROWD;
      lane.classList.toggle("crowded", crowded);
      if (me) {
        own.hidden = false;
        own.style.left = ownLeft.toFixed(1) + "px";
      }
      let gliding = false;
      if (crowded) {
        drawBands(density ? othersIn(density) : countGhosts());
      } else {
        clearBands();
        const targets = drawAll ? ghosts.keys() : dirty.values();
        for (const id of targets) {
          const ghost = ghosts.get(id);
          if (ghost) gliding = place(ghost, now) || gliding;
        }
      }
      drawAll = false;
      dirty.clear();
      if (gliding) {
        // Still on their way: the next frame moves them on, and only them.
        for (const [id, ghost] of ghosts) if (ghost.t0 + ghost.glide > now) dirty.add(id);
        requestDraw();
      }
    }

    /** Puts a ghost where it is on its glide toward its newest position;
     * true while it is still on its way. Layout is read from the cache only. */
    function place(ghost, now) {
      const toY = yOf(ghost.pos);
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

    /** Readers per block, counted from the ghosts the server sent. */
    function countGhosts() {
      const counts = new Array(Math.max(blocks.length, 1)).fill(0);
      for (const ghost of ghosts.values()) counts[blockOf(ghost.pos, counts.length)] += 1;
      return counts;
    }

    /** The server's density without this reader, whose own ghost is drawn
     * apart: it counts this reader at the last position sent. */
    function othersIn(counts) {
      const others = counts.slice(0, Math.max(blocks.length, 1));
      while (others.length < Math.max(blocks.length, 1)) others.push(0);
      if (me && !me.watching && lastSent !== null) {
        const i = blockOf(lastSent, others.length);
        if (others[i] > 0) others[i] -= 1;
      }
      return others;
    }

    function blockOf(pos, count) {
      return Math.min(Math.max(Math.floor(pos), 0), count - 1);
    }

    /** How many readers are at each block, as a bar beside the block. */
    function drawBands(counts) {
      const most = Math.max.apply(null, counts) || 1;
      for (let i = 0; i < counts.length; i++) {
        let band = bands[i];
        if (!counts[i]) {
          if (band) band.hidden = true;
          continue;
        }
        if (!band) {
          band = document.createElement("div");
          band.className = "ghost-density";
          lane.appendChild(band);
          bands[i] = band;
        }
        band.hidden = false;
        band.dataset.block = String(i);
        band.dataset.count = String(counts[i]);
        band.title = counts[i] + (counts[i] === 1 ? " reader" : " readers");
        band.style.transform = "translateY(" + (tops[i] || 0).toFixed(1) + "px)";
        band.style.height = Math.max(heights[i] || 0, 4).toFixed(1) + "px";
        band.style.setProperty("--share", (counts[i] / most).toFixed(3));
      }
    }

    function clearBands() {
      for (const band of bands) if (band) band.hidden = true;
    }

    function upsert(id, color, pos, away) {
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

    function setCounts(now, total) {
      counts = { now: now, total: total };
      for (const el of env.root.querySelectorAll("[data-now]")) el.textContent = String(now);
      for (const el of env.root.querySelectorAll("[data-total]")) el.textContent = String(total);
      announceSoon();
    }

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
        announcer.textContent = counts.now + (counts.now === 1 ? " reader" : " readers") + " reading now";
      }, wait);
    }

    // --- Events, from the stream, by polling, or from the leader tab ---------

    /** What each event does, wherever it came from. */
    const handlers = {
      hello: function (data) {
        const hello = JSON.parse(data);
        me = { id: hello.id, token: hello.token, color: hello.color, watching: !!hello.watching };
        if (hello.away_after > 0) awayAfterMs = hello.away_after * 1000;
        if (hello.let_go > 0) letGoMs = hello.let_go * 1000;
        clearTimeout(helloTimer);
        writeStorage(tokenStore(), TOKEN_KEY, hello.token);
        own.dataset.ghost = hello.id;
        own.style.setProperty("--ghost", hello.color);
        reconnectDelay = 2000;
        lastSent = null; // A new or resumed ghost: say where this reader is.
        awaySent = null;
        watchIdle();
        reportSoon();
        requestDraw();
      },
      snapshot: function (data) {
        const snapshot = JSON.parse(data);
        density = null; // Every ghost again: the room is not (or no longer) crowded.
        const present = new Set();
        for (const g of snapshot.ghosts) {
          present.add(g.id);
          upsert(g.id, g.color, g.pos, g.away);
        }
        for (const id of Array.from(ghosts.keys())) if (!present.has(id)) remove(id);
        setCounts(snapshot.now, snapshot.total);
        drawAll = true;
        requestDraw();
      },
      join: function (data) {
        const g = JSON.parse(data);
        upsert(g.id, g.color, g.pos, g.away);
        requestDraw();
      },
      leave: function (data) {
        remove(JSON.parse(data).id);
        requestDraw();
      },
      moves: function (data) {
        const now = performance.now();
        for (const m of JSON.parse(data).moves) {
          const ghost = ghosts.get(m.id);
          if (!ghost || (me && m.id === me.id)) continue;
          setPos(ghost, m.pos, now);
          ghost.away = !!m.away;
          dirty.add(m.id);
        }
        requestDraw();
      },
      density: function (data) {
        // The room is crowded: readers per block replace the ghosts.
        const crowd = JSON.parse(data);
        density = crowd.counts;
        setCounts(crowd.now, crowd.total);
        drawAll = true;
        requestDraw();
      },
      readers: function (data) {
        const counts = JSON.parse(data);
        setCounts(counts.now, counts.total);
      },
    };

    /** Handles an event here, and (the leader) in the other tabs too. */
    function handle(name, data) {
      if (!handlers[name]) return;
      handlers[name](data);
      share({ t: "event", name: name, data: data });
    }

    /** The room as this tab knows it, as the events a new tab starts from. */
    function stateEvents() {
      if (!me) return [];
      const events = [["hello", JSON.stringify({ id: me.id, token: me.token, color: me.color, watching: me.watching, away_after: awayAfterMs / 1000, let_go: letGoMs / 1000 })]];
      if (density) {
        events.push(["density", JSON.stringify({ counts: density, now: counts.now, total: counts.total })]);
      } else {
        const list = [];
        for (const [id, g] of ghosts) list.push({ id: id, color: g.color, pos: g.pos, away: g.away });
        events.push(["snapshot", JSON.stringify({ ghosts: list, now: counts.now, total: counts.total })]);
      }
      return events;
    }

    if (channel) {
      channel.onmessage = function (event) {
        const message = event.data || {};
        if (message.t === "event" && !leader) {
          if (handlers[message.name]) handlers[message.name](message.data);
        } else if (message.t === "state" && !leader && message.to === tabId) {
          for (const pair of message.events) handlers[pair[0]](pair[1]);
        } else if (message.t === "hi" && leader) {
          // A new tab of this post: it starts from what this one knows.
          tabs.set(message.tab, message);
          channel.postMessage({ t: "state", to: message.tab, events: stateEvents() });
          presenceChanged();
        } else if (message.t === "presence" && leader) {
          tabs.set(message.tab, message);
          presenceChanged();
        } else if (message.t === "pos") {
          lastPos = message.pos;
        } else if (message.t === "bye") {
          tabs.delete(message.tab);
          if (leader) presenceChanged();
        } else if (message.t === "hi?" && !leader) {
          channel.postMessage(presence());
        }
      };
      channel.postMessage(Object.assign(presence(), { t: "hi" }));
    }

    // --- Leading ---------------------------------------------------------------

    /** Asks for the lock that makes a tab the leader. Over HTTP/1.1 only a
     * shown tab asks, so hidden tabs never hold a connection. */
    function seekLead() {
      if (!locks || leader || seeking) return;
      if (http1 && document.hidden) return;
      const asking = new AbortController();
      seeking = asking;
      locks
        .request("ghostread:" + slug, { signal: asking.signal }, function () {
          seeking = null;
          leader = true;
          tabs.clear();
          channel.postMessage({ t: "hi?" }); // Every other tab: say whether you are shown.
          connect();
          return new Promise(function (resolve) {
            resign = resolve;
          });
        })
        .catch(function () {
          if (seeking === asking) seeking = null; // Given up: hidden again.
        });
    }

    /** Gives the connection and the lock up, leaving the ghost to the next
     * leader: the server holds it (away unless another tab is shown) until
     * that leader's stream takes it over. The stream closes only once the
     * server has heard to hold the ghost, or the ghost would leave first. */
    function stepDown() {
      if (seeking) {
        seeking.abort();
        seeking = null;
      }
      if (!leader || dormant) return;
      const done = resign;
      resign = null;
      if (locks) leader = false;
      else dormant = true; // Alone: it wakes when shown.
      const finish = function () {
        if (leader && !dormant) return; // Led again meanwhile.
        closeConnection();
        if (done) done();
      };
      const held = me ? report(away(), true) : null;
      // Until a stream says hello again, this ghost may be held or gone:
      // nothing more is reported for it.
      if (me) me.resting = true;
      if (held) held.then(finish, finish);
      else finish();
    }

    // --- Presence: shown, reading, away ------------------------------------------

    /** This tab is shown and its reader has done something lately. */
    function active() {
      return !document.hidden && performance.now() - lastActivity < awayAfterMs;
    }

    /** Whether every tab of this reader is hidden or idle: the ghost is away. */
    function away() {
      if (active()) return false;
      for (const tab of tabs.values()) if (tab.active) return false;
      return true;
    }

    /** Something changed whether this tab is shown or active: the leader
     * weighs it, another tab tells the leader. Over HTTP/1.1 a hidden tab
     * gives its connection up at once, and a shown one takes the lead. */
    function activityChanged() {
      if (channel && !leader) channel.postMessage(presence());
      clearTimeout(stepDownTimer);
      if (!document.hidden) {
        if (dormant) {
          dormant = false;
          connect();
        }
        // Shown again: the leader (if another tab leads) says who we are now.
        if (channel && !leader && me && me.resting) channel.postMessage(Object.assign(presence(), { t: "hi" }));
        seekLead();
      } else if (http1 && (leader || seeking)) {
        // A moment later: a tab that is closing is hidden first, and its
        // `pagehide` must find it still the leader, to say goodbye rather
        // than have its ghost held.
        stepDownTimer = setTimeout(stepDown, STEP_DOWN_MS);
        return;
      }
      presenceChanged();
    }

    /** The leader: says away or back when that changed, and lets go of the
     * stream once every tab has been hidden for `let_go`. */
    function presenceChanged() {
      if (!leader || dormant) return;
      const shown = !document.hidden || Array.from(tabs.values()).some(function (t) {
        return t.shown;
      });
      clearTimeout(letGoTimer);
      if (!shown && !letGone) {
        letGoTimer = setTimeout(letGo, letGoMs);
      } else if (shown && letGone) {
        letGone = false;
        connect();
      }
      const gone = away();
      if (me && gone !== awaySent) report(gone, false);
    }

    /** Every tab has been hidden for long: the stream closes and the ghost
     * leaves; a tab shown again opens it anew (resuming when it can). */
    function letGo() {
      if (!leader) return;
      letGone = true;
      goodbye();
      closeConnection();
    }

    function noteActivity() {
      const was = active();
      lastActivity = performance.now();
      watchIdle();
      if (!was && active()) activityChanged();
    }

    function watchIdle() {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(function () {
        if (!active()) activityChanged();
      }, awayAfterMs + 50);
    }

    // --- The connection (the leader's) ------------------------------------------

    function closeConnection() {
      clearTimeout(reconnectTimer);
      clearTimeout(helloTimer);
      clearTimeout(pollTimer);
      if (source) source.close();
      source = null;
    }

    function connect() {
      closeConnection();
      if (!leader) return;
      if (polling) return pollSoon(0);
      const watch = invisible() ? "watch=1" : "";
      const token = (me && me.token) || readStorage(tokenStore(), TOKEN_KEY);
      if (!token) return openStream(eventsUrl + (watch ? "?" + watch : ""));
      // A new stream resumes its ghost, but its token must not go in the URL
      // (proxies log URLs): a one-time ticket that moves nothing goes there.
      fetch(ticketUrl, {
        method: "POST",
        cache: "no-store",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token: token }),
      })
        .then(function (response) {
          return response.status === 200 ? response.json() : null;
        })
        .catch(function () {
          return null;
        })
        .then(function (answer) {
          if (!leader) return;
          const query = [];
          if (answer && answer.ticket) query.push("resume=" + encodeURIComponent(answer.ticket));
          if (watch) query.push(watch);
          openStream(eventsUrl + (query.length ? "?" + query.join("&") : ""));
        });
    }

    function openStream(url) {
      if (source) source.close();
      const opened = new EventSource(url);
      source = opened;
      for (const name of Object.keys(handlers)) {
        opened.addEventListener(name, function (event) {
          if (source === opened) handle(name, event.data);
        });
      }
      // A proxy that holds the stream back (buffering it whole) means no
      // hello ever comes: then ask by plain requests instead.
      helloTimer = setTimeout(function () {
        if (source === opened && !me) startPolling();
      }, HELLO_WITHIN_MS);
      opened.addEventListener("error", function () {
        // EventSource retries by itself (sending the token as Last-Event-ID)
        // unless the server answered with an error status; then retry here.
        if (source === opened && opened.readyState === EventSource.CLOSED) {
          reconnectTimer = setTimeout(connect, reconnectDelay);
          reconnectDelay = Math.min(reconnectDelay * 2, 60000);
        }
      });
    }

    // --- Long-polling, where the stream does not stream -----------------------

    function startPolling() {
      if (polling) return;
      polling = true;
      if (source) source.close();
      source = null;
      pollSoon(0);
    }

    function pollSoon(delay) {
      clearTimeout(pollTimer);
      if (leader && !letGone) pollTimer = setTimeout(poll, delay);
    }

    /** One poll: the events since the last answer, handled as if streamed. */
    function poll() {
      // This page's session, or (a new or reloaded page) the ghost to resume.
      const body = me
        ? { token: me.token, seen: pollSeen }
        : { resume: readStorage(tokenStore(), TOKEN_KEY), watch: invisible() };
      fetch(pollUrl, {
        method: "POST",
        cache: "no-store",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      })
        .then(function (response) {
          if (response.status === 200) return response.json();
          if (response.status === 410) {
            // The ghost is gone: start anew with the next poll.
            me = null;
            pollSeen = 0;
            writeStorage(tokenStore(), TOKEN_KEY, null);
            return pollSoon(0);
          }
          throw new Error("poll answered " + response.status);
        })
        .then(function (answer) {
          if (!answer) return;
          if (answer.seq <= pollSeen && me) return pollSoon(0);
          pollSeen = answer.seq;
          dispatch(answer.events);
          if (answer.ended) {
            me = null;
            pollSeen = 0;
          }
          pollSoon(0);
        })
        .catch(function () {
          pollSoon(2000); // Offline or refused for a moment: try again shortly.
        });
    }

    /** Event-stream text → the same handlers a stream's events go to. */
    function dispatch(text) {
      for (const block of text.split("\n\n")) {
        let name = "message";
        let data = null;
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) name = line.slice(7);
          else if (line.startsWith("data: ")) data = line.slice(6);
        }
        if (data !== null) handle(name, data);
      }
    }

    // --- Saying goodbye -------------------------------------------------------

    /** The page is going: this ghost leaves now, whatever the proxies in
     * between do with the stream. The token goes in the body, not the URL. */
    function goodbye() {
      if (!me) return;
      try {
        fetch(leaveUrl, {
          method: "POST",
          keepalive: true,
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ token: me.token }),
        }).catch(function () {});
      } catch (_) {
        // The page is unloading; nothing more can be done.
      }
      if (leader) me = null;
    }

    /** The tab is closing: the last tab of the post says goodbye; a leader
     * with other tabs open hands the ghost to the next. */
    function closing() {
      clearTimeout(stepDownTimer);
      if (channel) channel.postMessage({ t: "bye", tab: tabId });
      // A closing tab is hidden first: over HTTP/1.1 it has just stepped
      // down and asked for its ghost to be held. It held the ghost last all
      // the same, and with no other tab to take it the ghost must go now.
      const heldIt = leader || (me && me.resting);
      if (!heldIt) return;
      if (tabs.size > 0 && locks) {
        if (leader) stepDown();
      } else {
        goodbye();
      }
      closeConnection();
    }

    // --- Reporting the position ----------------------------------------------

    /** Sends the position at most every 100 ms, always the newest (trailing
     * edge). Only a shown tab reports; an invisible reader sends nothing. */
    function reportSoon() {
      if (sendTimer || !me || me.watching || me.resting || document.hidden) return;
      const wait = Math.max(lastSendAt + SEND_EVERY_MS - performance.now(), quietUntil - performance.now(), 0);
      sendTimer = setTimeout(function () {
        sendTimer = null;
        if (document.hidden) return;
        const pos = readingPosition();
        if (pos === lastSent && awaySent === false) return;
        report(false, false);
      }, wait);
    }

    /** Tells the server where this reader is, whether it is away, and (a
     * leader giving its connection up) to hold its ghost meanwhile. */
    function report(isAway, hold) {
      if (!me || me.watching || me.resting) return;
      // A hidden tab's own scroll position is not where the reader is.
      const pos = document.hidden && lastPos !== null ? lastPos : readingPosition();
      lastSent = pos;
      if (!document.hidden) {
        lastPos = pos;
        if (channel) channel.postMessage({ t: "pos", pos: pos });
      }
      awaySent = isAway;
      lastSendAt = performance.now();
      if (density) requestDraw(); // This reader left one block's band for another.
      const body = { token: me.token, pos: pos, away: isAway };
      if (hold) body.hold = true;
      return fetch(positionUrl, {
        method: "POST",
        keepalive: true,
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }).then(
        function (response) {
          if (response.status === 204) return;
          lastSent = null;
          if (response.status === 410) {
            // The server no longer knows this ghost (it restarted, or the
            // stream ended): reopen the stream, resuming when it can.
            me = null;
            if (leader && !polling) connect();
          } else if (response.status === 429) {
            const seconds = Number(response.headers.get("retry-after")) || 1;
            quietUntil = performance.now() + seconds * 1000;
            reportSoon();
          }
        },
        function () {
          lastSent = null; // Offline for a moment; the next scroll retries.
        }
      );
    }

    // --- Wiring --------------------------------------------------------------

    window.addEventListener("scroll", function () {
      noteActivity();
      reportSoon();
    }, { passive: true });
    for (const name of ["keydown", "pointerdown", "wheel", "touchstart"]) {
      window.addEventListener(name, noteActivity, { passive: true });
    }
    window.addEventListener("pagehide", closing);
    window.addEventListener("pageshow", function (event) {
      // Back from the back-forward cache: the ghost left; come back, resuming.
      if (!event.persisted) return;
      if (channel) channel.postMessage(Object.assign(presence(), { t: "hi" }));
      if (leader) connect();
      else seekLead();
    });
    window.addEventListener("resize", measure, { passive: true });
    window.addEventListener("load", measure);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) {
        lastActivity = performance.now();
        watchIdle();
        lastSent = null;
        drawAll = true;
        requestDraw();
      }
      activityChanged();
      reportSoon();
    });
    if (document.fonts && document.fonts.ready) document.fonts.ready.then(measure);
    for (const img of article.querySelectorAll("img")) {
      if (!img.complete) img.addEventListener("load", measure, { once: true });
    }
    if (window.ResizeObserver) new ResizeObserver(measure).observe(article);

    function readStorage(storage, key) {
      try {
        return storage.getItem(key);
      } catch (_) {
        return null; // Storage disabled: the client still works, unremembered.
      }
    }

    function writeStorage(storage, key, value) {
      try {
        if (value === null) storage.removeItem(key);
        else storage.setItem(key, value);
      } catch (_) {
        // Storage full or disabled: nothing to remember it in.
      }
    }

    measure();
    if (leader) connect();
    else seekLead();
  }

  /** Whether the server that served `entry` speaks HTTP/1.1 (or cannot
   * tell: then the client is as careful as over HTTP/1.1). */
  function overHttp1(entry) {
    const protocol = entry ? entry.nextHopProtocol : "";
    return !protocol || protocol.indexOf("http/1") === 0;
  }

  window.ghostread = { start: start, overHttp1: overHttp1 };

  // ghostread's own post pages: everything is where the server put it.
  const article = document.querySelector("article[data-slug][data-blocks]");
  const lane = document.querySelector("[data-ghost-lane]");
  if (!article || !lane) return;
  const blocks = Array.from(article.querySelectorAll("[data-block]"));
  const navigation = performance.getEntriesByType ? performance.getEntriesByType("navigation") : [];
  start({
    slug: article.dataset.slug,
    article: article,
    blocks: blocks,
    blockCount: Number(article.dataset.blocks) || blocks.length,
    lane: lane,
    reader: lane.parentElement,
    controls: document.querySelector(".post-footer p"),
    root: document,
    hideRoot: document.documentElement,
    base: "",
    http1: overHttp1(navigation[0]),
  });
})();
