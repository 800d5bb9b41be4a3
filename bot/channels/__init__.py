"""Channels translate between a platform and the bot's inbound/outbound messages."""
