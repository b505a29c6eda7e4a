"""`inpaint-app`: a page in the browser that fills a hole you paint with every method
side by side (server.py), its static page (static/), and the headless-Chromium
driver its tests and README screenshot use (browser.py)."""
