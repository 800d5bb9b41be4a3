"""The aiohttp web app: health, web chat, officer inbox, webhooks."""
