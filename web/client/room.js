// What the server says about the room, wherever it came from: the stream,
// a poll, or the leader tab. The leader passes every event on to the
// other tabs of this reader.

export function room(page) {
  const handlers = {
    hello: function (data) {
      page.session.greet(JSON.parse(data));
      page.connection.greeted();
      page.drawing.greet(page.session.me());
      page.presence.greeted();
    },
    snapshot: function (data) {
      const snapshot = JSON.parse(data);
      page.drawing.snapshot(snapshot.ghosts);
      page.controls.setCounts(snapshot.now, snapshot.total);
    },
    join: function (data) {
      page.drawing.join(JSON.parse(data));
    },
    leave: function (data) {
      page.drawing.leave(JSON.parse(data).id);
    },
    moves: function (data) {
      page.drawing.moves(JSON.parse(data).moves);
    },
    density: function (data) {
      const crowd = JSON.parse(data);
      page.drawing.density(crowd.counts);
      page.controls.setCounts(crowd.now, crowd.total);
    },
    near: function (data) {
      page.drawing.near(JSON.parse(data).ghosts);
    },
    readers: function (data) {
      const counts = JSON.parse(data);
      page.controls.setCounts(counts.now, counts.total);
    },
  };

  /** Applies an event here only (a tab that follows the leader). */
  function apply(name, data) {
    if (handlers[name]) handlers[name](data);
  }

  return {
    apply: apply,
    names: function () {
      return Object.keys(handlers);
    },
    /** Applies an event here and (the leader) in the other tabs too. */
    handle: function (name, data) {
      if (!handlers[name]) return;
      handlers[name](data);
      page.tabs.share({ t: "event", name: name, data: data });
    },
    /** The room as this tab knows it, as the events a new tab starts from. */
    state: function () {
      const hello = page.session.hello();
      if (!hello) return [];
      const counts = page.controls.counts();
      const drawn = page.drawing.state();
      if (drawn.density) {
        const crowd = [["hello", hello], ["density", JSON.stringify({ counts: drawn.density, now: counts.now, total: counts.total })]];
        if (drawn.near) crowd.push(["near", JSON.stringify({ ghosts: drawn.near })]);
        return crowd;
      }
      return [["hello", hello], ["snapshot", JSON.stringify({ ghosts: drawn.ghosts, now: counts.now, total: counts.total })]];
    },
  };
}
