// One reader per browser per post: the tabs of one post elect a leader
// with the Web Locks API; only the leader holds the connection, and it
// shares every event with the other tabs over a BroadcastChannel. Any
// shown tab reports its own position with the shared token. Over HTTP/1.1
// (six connections per site) only a shown tab may lead, so hidden tabs
// never hold a connection another page needs. Browsers without these APIs
// keep one connection and one ghost per tab.

/** How long a hidden tab on HTTP/1.1 waits before giving its stream up. */
const STEP_DOWN_MS = 250;

export function tabs(env, page) {
  const tabId = Math.random().toString(36).slice(2);
  const channel = window.BroadcastChannel ? new BroadcastChannel("ghostread:" + env.slug) : null;
  const locks = channel && navigator.locks ? navigator.locks : null;
  /** Whether this tab holds the connection (always, without the APIs). */
  let leader = !locks;
  /** Without the APIs, over HTTP/1.1: the hidden tab gave its stream up. */
  let dormant = false;
  let seeking = null; // An AbortController while waiting for the lock.
  let stepDownTimer = null;
  let resign = null; // Resolving it releases the lock.
  /** The leader's view of the other tabs: { shown, active } of each. */
  const others = new Map();
  /** The newest position any tab of this reader reported. */
  let lastPos = null;

  function presence() {
    return { t: "presence", tab: tabId, shown: !document.hidden, active: page.presence.active() };
  }

  function hi() {
    if (channel) channel.postMessage(Object.assign(presence(), { t: "hi" }));
  }

  function listen(event) {
    const message = event.data || {};
    if (message.t === "event" && !leader) {
      page.room.apply(message.name, message.data);
    } else if (message.t === "state" && !leader && message.to === tabId) {
      for (const pair of message.events) page.room.apply(pair[0], pair[1]);
    } else if (message.t === "hi" && leader) {
      // A new tab of this post: it starts from what this one knows.
      others.set(message.tab, message);
      channel.postMessage({ t: "state", to: message.tab, events: page.room.state() });
      page.presence.changed();
    } else if (message.t === "presence" && leader) {
      others.set(message.tab, message);
      page.presence.changed();
    } else if (message.t === "pos") {
      lastPos = message.pos;
    } else if (message.t === "bye") {
      others.delete(message.tab);
      if (leader) page.presence.changed();
    } else if (message.t === "hi?" && !leader) {
      channel.postMessage(presence());
    }
  }

  /** Asks for the lock that makes a tab the leader. Over HTTP/1.1 only a
   * shown tab asks, so hidden tabs never hold a connection. */
  function seekLead() {
    if (!locks || leader || seeking) return;
    if (env.http1 && document.hidden) return;
    const asking = new AbortController();
    seeking = asking;
    locks
      .request("ghostread:" + env.slug, { signal: asking.signal }, function () {
        seeking = null;
        leader = true;
        others.clear();
        channel.postMessage({ t: "hi?" }); // Every other tab: say whether you are shown.
        page.connection.connect();
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
      page.connection.close();
      if (done) done();
    };
    const held = page.session.me() ? page.presence.report(page.presence.away(), true) : null;
    page.session.rest();
    if (held) held.then(finish, finish);
    else finish();
  }

  return {
    /** Whether this tab holds the connection. */
    leads: function () {
      return leader;
    },
    /** Whether this tab holds the connection and has not given it up. */
    leadsAwake: function () {
      return leader && !dormant;
    },
    /** Whether the tabs of this browser are one reader. */
    shared: function () {
      return locks !== null;
    },
    anyShown: function () {
      for (const tab of others.values()) if (tab.shown) return true;
      return false;
    },
    anyActive: function () {
      for (const tab of others.values()) if (tab.active) return true;
      return false;
    },
    lastPos: function () {
      return lastPos;
    },
    /** A shown tab's reading position, for a hidden leader to report. */
    notePos: function (pos) {
      lastPos = pos;
      if (channel) channel.postMessage({ t: "pos", pos: pos });
    },
    share: function (message) {
      if (channel && leader) channel.postMessage(message);
    },
    /** Joins this post's other tabs, then leads or waits to. */
    begin: function () {
      if (channel) {
        channel.onmessage = listen;
        hi();
      }
    },
    lead: function () {
      if (leader) page.connection.connect();
      else seekLead();
    },
    /** Back from the back-forward cache: the ghost left; come back, resuming. */
    back: function () {
      hi();
      if (leader) page.connection.connect();
      else seekLead();
    },
    /** Something changed whether this tab is shown or active: the leader
     * weighs it, another tab tells the leader. Over HTTP/1.1 a hidden tab
     * gives its connection up at once, and a shown one takes the lead. */
    activityChanged: function () {
      if (channel && !leader) channel.postMessage(presence());
      clearTimeout(stepDownTimer);
      if (!document.hidden) {
        if (dormant) {
          dormant = false;
          page.connection.connect();
        }
        // Shown again: the leader (if another tab leads) says who we are now.
        const me = page.session.me();
        if (channel && !leader && me && me.resting) hi();
        seekLead();
      } else if (env.http1 && (leader || seeking)) {
        // A moment later: a tab that is closing is hidden first, and its
        // `pagehide` must find it still the leader, to say goodbye rather
        // than have its ghost held.
        stepDownTimer = setTimeout(stepDown, STEP_DOWN_MS);
        return;
      }
      page.presence.changed();
    },
    /** The tab is closing: the last tab of the post says goodbye; a leader
     * with other tabs open hands the ghost to the next. */
    closing: function () {
      clearTimeout(stepDownTimer);
      if (channel) channel.postMessage({ t: "bye", tab: tabId });
      // A closing tab is hidden first: over HTTP/1.1 it has just stepped
      // down and asked for its ghost to be held. It held the ghost last all
      // the same, and with no other tab to take it the ghost must go now.
      const me = page.session.me();
      const heldIt = leader || (me && me.resting);
      if (!heldIt) return;
      if (others.size > 0 && locks) {
        if (leader) stepDown();
      } else {
        page.connection.goodbye();
      }
      page.connection.close();
    },
  };
}
