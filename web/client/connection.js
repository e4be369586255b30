// The leader tab's connection to the server: the event stream (resuming
// the ghost through a one-time ticket), long-polling where a proxy holds
// the stream back, and the goodbye when the page goes.

/** How long a stream may take to say hello before the client polls instead. */
const HELLO_WITHIN_MS = 4000;

export function connection(env, page) {
  const base = env.base + "/posts/" + encodeURIComponent(env.slug);
  let source = null;
  let reconnectTimer = null;
  let reconnectDelay = 2000;
  let helloTimer = null;
  // Long-polling: whether this page polls instead of streaming, and the
  // number of the last answer it has.
  let polling = false;
  let pollTimer = null;
  let pollSeen = 0;

  function post(path, body, keepalive) {
    return fetch(base + path, {
      method: "POST",
      cache: "no-store",
      keepalive: !!keepalive,
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  function close() {
    clearTimeout(reconnectTimer);
    clearTimeout(helloTimer);
    clearTimeout(pollTimer);
    if (source) source.close();
    source = null;
  }

  function connect() {
    close();
    if (!page.tabs.leads()) return;
    if (polling) return pollSoon(0);
    const watch = page.controls.invisible() ? "watch=1" : "";
    const token = page.session.token();
    if (!token) return openStream(base + "/events" + (watch ? "?" + watch : ""));
    // A new stream resumes its ghost, but its token must not go in the URL
    // (proxies log URLs): a one-time ticket that moves nothing goes there.
    post("/ticket", { token: token })
      .then(function (response) {
        return response.status === 200 ? response.json() : null;
      })
      .catch(function () {
        return null;
      })
      .then(function (answer) {
        if (!page.tabs.leads()) return;
        const query = [];
        if (answer && answer.ticket) query.push("resume=" + encodeURIComponent(answer.ticket));
        if (watch) query.push(watch);
        openStream(base + "/events" + (query.length ? "?" + query.join("&") : ""));
      });
  }

  function openStream(url) {
    if (source) source.close();
    const opened = new EventSource(url);
    source = opened;
    for (const name of page.room.names()) {
      opened.addEventListener(name, function (event) {
        if (source === opened) page.room.handle(name, event.data);
      });
    }
    // A proxy that holds the stream back (buffering it whole) means no
    // hello ever comes: then ask by plain requests instead.
    helloTimer = setTimeout(function () {
      if (source === opened && !page.session.me()) startPolling();
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

  function startPolling() {
    if (polling) return;
    polling = true;
    if (source) source.close();
    source = null;
    pollSoon(0);
  }

  function pollSoon(delay) {
    clearTimeout(pollTimer);
    if (page.tabs.leads() && !page.presence.letGone()) pollTimer = setTimeout(poll, delay);
  }

  /** One poll: the events since the last answer, handled as if streamed. */
  function poll() {
    // This page's session, or (a new or reloaded page) the ghost to resume.
    const me = page.session.me();
    const body = me ? { token: me.token, seen: pollSeen } : { resume: page.session.token(), watch: page.controls.invisible() };
    post("/poll", body)
      .then(function (response) {
        if (response.status === 200) return response.json();
        if (response.status === 410) {
          // The ghost is gone: start anew with the next poll.
          page.session.forget(true);
          pollSeen = 0;
          return pollSoon(0);
        }
        throw new Error("poll answered " + response.status);
      })
      .then(function (answer) {
        if (!answer) return;
        if (answer.seq <= pollSeen && page.session.me()) return pollSoon(0);
        pollSeen = answer.seq;
        dispatch(answer.events);
        if (answer.ended) {
          page.session.forget(false);
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
      if (data !== null) page.room.handle(name, data);
    }
  }

  return {
    connect: connect,
    close: close,
    polling: function () {
      return polling;
    },
    /** A stream said hello: it streams, and the next failure retries soon. */
    greeted: function () {
      clearTimeout(helloTimer);
      reconnectDelay = 2000;
    },
    /** The page is going: this ghost leaves now, whatever the proxies in
     * between do with the stream. The token goes in the body, not the URL. */
    goodbye: function () {
      const me = page.session.me();
      if (!me) return;
      try {
        post("/leave", { token: me.token }, true).catch(function () {});
      } catch (_) {
        // The page is unloading; nothing more can be done.
      }
      if (page.tabs.leads()) page.session.forget(false);
    },
    /** Where the position goes: POST, kept alive past the page's end. */
    report: function (body) {
      return post("/position", body, true);
    },
  };
}
