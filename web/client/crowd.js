// A crowded room: readers per block, drawn as a band beside each block
// instead of one ghost per reader.

/** More ghosts than this are drawn as bands, even when the server sends
 * every ghost (it does not above its --crowd). */
export const CROWD = 50;

function blockOf(pos, count) {
  return Math.min(Math.max(Math.floor(pos), 0), count - 1);
}

/** Readers per block, counted from the ghosts the server sent. */
export function countGhosts(ghosts, count) {
  const counts = new Array(count).fill(0);
  for (const ghost of ghosts) counts[blockOf(ghost.pos, count)] += 1;
  return counts;
}

/** The server's density without this reader, whose own ghost is drawn
 * apart: it counts this reader at `mine`, the last position sent (null
 * when it counts this reader nowhere). */
export function othersIn(density, count, mine) {
  const others = density.slice(0, count);
  while (others.length < count) others.push(0);
  if (mine !== null) {
    const i = blockOf(mine, count);
    if (others[i] > 0) others[i] -= 1;
  }
  return others;
}

/** A band's level (docs/PROTOCOL.md): 0 for an empty block, then one more
 * for each doubling of its readers: what the server's density follows. */
function level(n) {
  return n > 0 ? 32 - Math.clz32(n) : 0;
}

/** The bands of one lane, placed from the cached layout. */
export function bands(lane, layout) {
  const shown = [];
  return {
    /** How many readers are at each block, as a bar beside the block. */
    draw: function (counts) {
      const most = level(Math.max.apply(null, counts)) || 1;
      for (let i = 0; i < counts.length; i++) {
        let band = shown[i];
        if (!counts[i]) {
          if (band) band.hidden = true;
          continue;
        }
        if (!band) {
          band = document.createElement("div");
          band.className = "ghost-density";
          lane.appendChild(band);
          shown[i] = band;
        }
        band.hidden = false;
        band.dataset.block = String(i);
        band.dataset.count = String(counts[i]);
        band.title = counts[i] + (counts[i] === 1 ? " reader" : " readers");
        band.style.transform = "translateY(" + layout.top(i).toFixed(1) + "px)";
        band.style.height = Math.max(layout.height(i), 4).toFixed(1) + "px";
        band.style.setProperty("--share", (level(counts[i]) / most).toFixed(3));
      }
    },
    clear: function () {
      for (const band of shown) if (band) band.hidden = true;
    },
  };
}
