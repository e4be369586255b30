// ghostread's browser client: the other readers of this post as ghosts in
// the margin, live. Plain JavaScript, no dependencies, loaded with `defer`.
// The wire contract is docs/PROTOCOL.md; this file only speaks it.
//
// Reads and writes of layout are kept apart: block positions are measured
// in one pass when the layout changes (resize, fonts, images), scrolling
// only reads the cached numbers, and every DOM write happens in one
// requestAnimationFrame.
(function () {
  "use strict";

  const article = document.querySelector("article[data-slug][data-blocks]");
  const lane = document.querySelector("[data-ghost-lane]");
  if (!article || !lane || !window.EventSource || !window.fetch) return;

  const slug = article.dataset.slug;
  const reader = lane.parentElement;
  const blocks = Array.from(article.querySelectorAll("[data-block]"));
  const blockCount = Number(article.dataset.blocks) || blocks.length;
  /** Where the reading line sits, as a fraction of the viewport height. */
  const READING_LINE = 1 / 3;
  /** The fastest this client reports its position. */
  const SEND_EVERY_MS = 100;
  /** More ghosts than this are drawn as a density band per block, even when
   * the server sends every ghost (it does not above its --crowd). */
  const CROWD = 50;
  const TOKEN_KEY = "ghostread:token:" + slug;
  const HIDDEN_KEY = "ghostread:hidden";
  const eventsUrl = "/posts/" + encodeURIComponent(slug) + "/events";
  const positionUrl = "/posts/" + encodeURIComponent(slug) + "/position";
  const pollUrl = "/posts/" + encodeURIComponent(slug) + "/poll";
  const leaveUrl = "/posts/" + encodeURIComponent(slug) + "/leave";
  const ticketUrl = "/posts/" + encodeURIComponent(slug) + "/ticket";
  /** How long a stream may take to say hello before the client polls instead. */
  const HELLO_WITHIN_MS = 4000;

  // --- State -------------------------------------------------------------

  /** Other readers by id: { color, pos, el }. */
  const ghosts = new Map();
  /** In a crowded room, readers per block as the server counts them (this
   * reader included); null while the server sends every ghost. */
  let density = null;
  let me = null; // { id, token, color }
  let source = null;
  let reconnectTimer = null;
  let reconnectDelay = 2000;
  let helloTimer = null;
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

  // Drawing.
  let frame = 0;
  let drawAll = true;
  const dirty = new Set();
  const bands = [];

  // --- Own ghost and the toggle ------------------------------------------

  lane.setAttribute("aria-hidden", "true");
  const own = document.createElement("div");
  own.className = "ghost";
  own.dataset.self = "";
  own.hidden = true;
  lane.appendChild(own);

  const toggle = document.createElement("button");
  toggle.type = "button";
  toggle.className = "ghost-toggle";
  const footer = document.querySelector(".post-footer p");
  if (footer) {
    footer.appendChild(document.createTextNode(" · "));
    footer.appendChild(toggle);
  }
  toggle.addEventListener("click", function () {
    setHidden(!document.documentElement.classList.contains("ghosts-hidden"));
  });
  setHidden(readStorage(localStorage, HIDDEN_KEY) === "1");

  function setHidden(hidden) {
    document.documentElement.classList.toggle("ghosts-hidden", hidden);
    toggle.textContent = hidden ? "Show ghosts" : "Hide ghosts";
    toggle.setAttribute("aria-pressed", hidden ? "true" : "false");
    writeStorage(localStorage, HIDDEN_KEY, hidden ? "1" : null);
  }

  // --- Layout ------------------------------------------------------------

  /** Reads every block's box in one pass, then redraws everything. */
  function measure() {
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

  function draw() {
    frame = 0;
    // The ghosts of the per-ghost mode go in the same frame as the bands
    // come, so a switch of mode never shows both, or neither.
    if (density) for (const id of Array.from(ghosts.keys())) remove(id);
    const crowded = density !== null || ghosts.size > CROWD;
    lane.classList.toggle("crowded", crowded);
    if (me) {
      own.hidden = false;
      own.style.left = ownLeft.toFixed(1) + "px";
    }
    if (crowded) {
      drawBands(density ? othersIn(density) : countGhosts());
    } else {
      clearBands();
      const targets = drawAll ? ghosts.keys() : dirty.values();
      for (const id of targets) {
        const ghost = ghosts.get(id);
        if (ghost) ghost.el.style.transform = "translateY(" + yOf(ghost.pos).toFixed(1) + "px)";
      }
    }
    drawAll = false;
    dirty.clear();
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
    if (me && lastSent !== null) {
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

  function upsert(id, color, pos) {
    if (me && id === me.id) return;
    let ghost = ghosts.get(id);
    if (!ghost) {
      const el = document.createElement("div");
      el.className = "ghost";
      el.dataset.ghost = id;
      lane.appendChild(el);
      ghost = { color: color, pos: pos, el: el };
      ghosts.set(id, ghost);
    }
    if (color && ghost.color !== color) ghost.color = color;
    ghost.el.style.setProperty("--ghost", ghost.color);
    ghost.pos = pos;
    dirty.add(id);
  }

  function remove(id) {
    const ghost = ghosts.get(id);
    if (!ghost) return;
    ghost.el.remove();
    ghosts.delete(id);
  }

  function setCounts(now, total) {
    for (const el of document.querySelectorAll("[data-now]")) el.textContent = String(now);
    for (const el of document.querySelectorAll("[data-total]")) el.textContent = String(total);
  }

  // --- The event stream ----------------------------------------------------

  /** What each event does, whether it came on the stream or by polling. */
  const handlers = {
    hello: function (data) {
      const hello = JSON.parse(data);
      me = { id: hello.id, token: hello.token, color: hello.color };
      clearTimeout(helloTimer);
      writeStorage(sessionStorage, TOKEN_KEY, hello.token);
      own.dataset.ghost = hello.id;
      own.style.setProperty("--ghost", hello.color);
      reconnectDelay = 2000;
      lastSent = null; // A new or resumed ghost: say where this reader is.
      reportSoon();
      requestDraw();
    },
    snapshot: function (data) {
      const snapshot = JSON.parse(data);
      density = null; // Every ghost again: the room is not (or no longer) crowded.
      const present = new Set();
      for (const g of snapshot.ghosts) {
        present.add(g.id);
        upsert(g.id, g.color, g.pos);
      }
      for (const id of Array.from(ghosts.keys())) if (!present.has(id)) remove(id);
      setCounts(snapshot.now, snapshot.total);
      drawAll = true;
      requestDraw();
    },
    join: function (data) {
      const g = JSON.parse(data);
      upsert(g.id, g.color, g.pos);
      requestDraw();
    },
    leave: function (data) {
      remove(JSON.parse(data).id);
      drawAll = true;
      requestDraw();
    },
    moves: function (data) {
      for (const m of JSON.parse(data).moves) {
        const ghost = ghosts.get(m.id);
        if (!ghost || (me && m.id === me.id)) continue;
        ghost.pos = m.pos;
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

  function connect() {
    clearTimeout(reconnectTimer);
    clearTimeout(helloTimer);
    if (source) source.close();
    source = null;
    if (polling) return pollSoon(0);
    const token = readStorage(sessionStorage, TOKEN_KEY);
    if (!token) return openStream(eventsUrl);
    // A reload resumes its ghost, but its token must not go in the URL
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
        const ticket = answer && answer.ticket;
        openStream(ticket ? eventsUrl + "?resume=" + encodeURIComponent(ticket) : eventsUrl);
      });
  }

  function openStream(url) {
    if (source) source.close();
    source = new EventSource(url);
    for (const name of Object.keys(handlers)) {
      source.addEventListener(name, function (event) {
        handlers[name](event.data);
      });
    }
    // A proxy that holds the stream back (buffering it whole) means no
    // hello ever comes: then ask by plain requests instead.
    helloTimer = setTimeout(function () {
      if (!me) startPolling();
    }, HELLO_WITHIN_MS);
    source.addEventListener("error", function () {
      // EventSource retries by itself (sending the token as Last-Event-ID)
      // unless the server answered with an error status; then retry here.
      if (source && source.readyState === EventSource.CLOSED) {
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
    pollTimer = setTimeout(poll, delay);
  }

  /** One poll: the events since the last answer, handled as if streamed. */
  function poll() {
    // This page's session, or (a new or reloaded page) the ghost to resume.
    const body = me
      ? { token: me.token, seen: pollSeen }
      : { resume: readStorage(sessionStorage, TOKEN_KEY) };
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
          writeStorage(sessionStorage, TOKEN_KEY, null);
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
      if (data !== null && handlers[name]) handlers[name](data);
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
    me = null;
    clearTimeout(pollTimer);
    if (source) source.close();
    source = null;
  }

  // --- Reporting the position ----------------------------------------------

  /** Sends the position at most every 100 ms, always the newest (trailing edge). */
  function reportSoon() {
    if (sendTimer || !me || document.hidden) return;
    const wait = Math.max(lastSendAt + SEND_EVERY_MS - performance.now(), quietUntil - performance.now(), 0);
    sendTimer = setTimeout(report, wait);
  }

  function report() {
    sendTimer = null;
    if (!me || document.hidden) return;
    const pos = readingPosition();
    if (pos === lastSent) return;
    lastSent = pos;
    lastSendAt = performance.now();
    if (density) requestDraw(); // This reader left one block's band for another.
    fetch(positionUrl, {
      method: "POST",
      keepalive: true,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: me.token, pos: pos }),
    }).then(
      function (response) {
        if (response.status === 204) return;
        lastSent = null;
        if (response.status === 410) {
          // The server no longer knows this ghost (it restarted, or the
          // stream ended): reopen the stream, resuming when it can.
          me = null;
          if (!polling) connect();
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

  window.addEventListener("scroll", reportSoon, { passive: true });
  window.addEventListener("pagehide", goodbye);
  window.addEventListener("pageshow", function (event) {
    // Back from the back-forward cache: the ghost left; come back, resuming.
    if (event.persisted) connect();
  });
  window.addEventListener("resize", measure, { passive: true });
  window.addEventListener("load", measure);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      lastSent = null;
      reportSoon();
    }
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
  connect();
})();
