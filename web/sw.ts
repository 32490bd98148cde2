/**
 * The owner app's service worker: keeps the app's own files so that what needs no portal (the
 * start screen, what to do when a phone is lost) opens without a network. The app's files are
 * fetched from the network first (an updated app is used at once) and from this cache only when
 * the network fails; the protocol's requests (/.well-known/mmm/...) are never touched or kept.
 */
/// <reference lib="webworker" />
export {};
declare const self: ServiceWorkerGlobalScope;

const CACHE = 'mesh-owner-app-v1';
const FILES = ['./', './index.html', './app.js', './app.css'];

self.addEventListener('install', (e) => {
  e.waitUntil(
    caches
      .open(CACHE)
      .then((c) => c.addAll(FILES))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (e) => {
  e.waitUntil(self.clients.claim());
});

self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== 'GET' || url.origin !== self.location.origin || url.pathname.startsWith('/.well-known/')) return;
  const page = e.request.mode === 'navigate';
  e.respondWith(
    fetch(e.request).then(
      (res) => {
        if (res.ok && !page) void caches.open(CACHE).then((c) => c.put(e.request, res.clone()));
        return res;
      },
      async () => {
        // offline: the app's files from the cache; any page of the app (/, /claim, /invite) is index.html
        const hit = await caches.match(page ? './index.html' : e.request);
        return hit ?? Response.error();
      },
    ),
  );
});
