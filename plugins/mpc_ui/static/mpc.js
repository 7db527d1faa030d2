// While a run is live, swap in a fresh #content every data-refresh seconds (no full reload).
(function () {
  function every() {
    var box = document.getElementById('content');
    return box ? 1000 * parseInt(box.getAttribute('data-refresh') || '0', 10) : 0;
  }
  function again() {
    var box = document.getElementById('content');
    if (!box || every() <= 0) return;
    var url = new URL(window.location.href);
    url.searchParams.set('partial', '1');
    fetch(url.toString(), {credentials: 'same-origin', headers: {'Accept': 'text/html'}})
      .then(function (r) { if (r.redirected || !r.ok) { window.location.reload(); return null; } return r.text(); })
      .then(function (text) {
        if (text === null) return;
        var fresh = new DOMParser().parseFromString(text, 'text/html').getElementById('content');
        if (fresh) box.replaceWith(fresh);
        if (every() > 0) setTimeout(again, every());
      })
      .catch(function () { setTimeout(again, every() || 30000); });
  }
  if (every() > 0) setTimeout(again, every());
})();
