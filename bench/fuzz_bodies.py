"""Bodies for bench/fuzz_webhooks.py: Telegram updates, Meta DMs and comments, X DMs, and junk, often wrongly typed.

Every strategy yields the right shape most of the time (so the parsers are reached) and anything at
all some of the time; `extreme_bodies` are the few hand-made ones hypothesis would rarely reach:
huge, deeply nested, not UTF-8.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

ACCOUNT = "17841400000000001"  # the Instagram account
PAGE = "100000000000001"  # the Facebook Page (MESSENGER_PAGE_ID)
X_ACCOUNT = "1500000000000000001"  # the police account on X (tests/fake_x_api.py)
MAX_BODY = 1024 * 1024  # the app's client_max_size

junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)


def maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly the right type, sometimes anything at all."""
    return st.one_of(strategy, strategy, strategy, junk)


def shaped(required: dict[str, st.SearchStrategy], optional: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """A dict with these fields (each possibly of the wrong type), optional ones sometimes left out."""
    return st.fixed_dictionaries({k: maybe(v) for k, v in required.items()},
                                 optional={k: maybe(v) for k, v in optional.items()})


def encoded(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """JSON of the strategy's values, or sometimes raw bytes that are not JSON at all."""
    as_json = strategy.map(lambda v: json.dumps(v).encode())
    return st.one_of(as_json, as_json, as_json, st.binary(max_size=200))


# -- Telegram ----------------------------------------------------------------------------------

ids = st.integers(min_value=-2**53, max_value=2**53)
digits = st.integers(min_value=0, max_value=2**63 - 1).map(str)  # X and Meta ids: digits, sent as strings
chat = shaped({"id": ids, "type": st.sampled_from(["private", "group", "supergroup", "channel"])}, {"first_name": st.text(max_size=10)})
user = shaped({"id": ids, "is_bot": st.booleans(), "first_name": st.text(max_size=10)}, {"language_code": st.sampled_from(["de", "en", ""])})
tg_message = shaped(
    {"message_id": st.integers(min_value=0), "date": st.integers(min_value=0, max_value=2**32), "chat": chat},
    {"from": user, "text": st.text(max_size=200), "caption": st.text(max_size=50),
     "photo": st.lists(shaped({"file_id": st.text(max_size=8), "file_unique_id": st.text(max_size=8),
                               "width": st.integers(0, 99), "height": st.integers(0, 99)}, {}), max_size=2),
     "voice": shaped({"file_id": st.text(max_size=8), "file_unique_id": st.text(max_size=8), "duration": st.integers(0, 99)}, {}),
     "entities": st.lists(shaped({"type": st.sampled_from(["bot_command", "url", "bold"]), "offset": st.integers(-2, 50),
                                  "length": st.integers(-2, 50)}, {}), max_size=2)})
callback = shaped({"id": st.text(max_size=8), "from": user, "chat_instance": st.text(max_size=8)},
                  {"data": st.text(max_size=30), "message": tg_message})
telegram_update = st.one_of(
    shaped({"update_id": st.integers(min_value=0, max_value=2**31)},
           {"message": tg_message, "edited_message": tg_message, "callback_query": callback,
            "channel_post": tg_message, "business_message": tg_message}),
    junk,
)

# -- Meta: DMs (`messaging`) and comments (`changes`: Instagram comments, Page feed) --------------

attachment = shaped({"type": st.sampled_from(["image", "video", "audio", "file", "share", "story_mention", "x"])},
                    {"payload": shaped({}, {"url": st.text(max_size=20)})})
meta_message = shaped({"mid": st.text(max_size=20)},
                      {"text": st.text(max_size=200), "is_echo": st.booleans(), "app_id": ids,
                       "attachments": st.lists(attachment, max_size=2),
                       "quick_reply": shaped({"payload": st.text(max_size=20)}, {}),
                       "reply_to": shaped({"mid": st.text(max_size=10)}, {})})
messaging = shaped({"sender": shaped({"id": st.text(max_size=12)}, {}), "recipient": shaped({"id": st.just(ACCOUNT)}, {}),
                    "timestamp": st.integers(min_value=-1, max_value=2**45)},
                   {"message": meta_message, "postback": shaped({"payload": st.text(max_size=20)}, {"title": st.text(max_size=10)}),
                    "read": shaped({"mid": st.text(max_size=10)}, {}), "reaction": junk})
ig_comment = shaped({"id": digits, "from": shaped({"id": st.one_of(digits, st.just(ACCOUNT))}, {"username": st.text(max_size=12)}),
                     "media": shaped({"id": digits}, {"media_product_type": st.sampled_from(["FEED", "REELS", "AD", ""])})},
                    {"text": st.text(max_size=200), "parent_id": digits})
fb_comment = shaped({"item": st.sampled_from(["comment", "comment", "post", "reaction"]),
                     "verb": st.sampled_from(["add", "add", "edited", "edit", "remove", "hide", "unhide", "x"]),
                     "comment_id": st.text(max_size=20), "post_id": st.one_of(st.just(f"{PAGE}_555"), st.text(max_size=20)),
                     "from": shaped({"id": st.one_of(digits, st.just(PAGE))}, {"name": st.text(max_size=12)})},
                    {"message": st.text(max_size=200), "parent_id": st.text(max_size=20),
                     "created_time": st.integers(-1, 2**45), "photo": st.text(max_size=20), "video": st.text(max_size=20),
                     "post": shaped({}, {"permalink_url": st.text(max_size=30), "id": st.text(max_size=20)})})
ig_change = shaped({"field": st.sampled_from(["comments", "comments", "live_comments", "mentions"]), "value": ig_comment}, {})
fb_change = shaped({"field": st.sampled_from(["feed", "feed", "ratings"]), "value": fb_comment}, {})
meta_entry = shaped({"id": st.sampled_from([ACCOUNT, PAGE]), "time": st.integers(0, 2**45)},
                    {"messaging": st.lists(messaging, max_size=3), "changes": st.lists(st.one_of(ig_change, fb_change), max_size=3)})


def comment_body(obj: str, account: str, changes: st.SearchStrategy) -> st.SearchStrategy:
    """A well-formed envelope of comment changes (the changes themselves possibly wrongly typed)."""
    entry = st.fixed_dictionaries({"id": st.just(account), "time": st.integers(0, 2**45),
                                   "changes": st.lists(changes, min_size=1, max_size=2)})
    return st.fixed_dictionaries({"object": st.just(obj), "entry": st.lists(entry, min_size=1, max_size=2)})


meta_body = st.one_of(
    shaped({"object": st.sampled_from(["instagram", "page", "user"]), "entry": st.lists(meta_entry, max_size=2)}, {}),
    comment_body("instagram", ACCOUNT, ig_change), comment_body("page", PAGE, fb_change),
    junk,
)

# -- X: Account Activity API and X Activity API envelopes ----------------------------------------

url = shaped({"url": st.text(max_size=12), "expanded_url": st.text(max_size=20)}, {})
media = shaped({"type": st.sampled_from(["photo", "video", "animated_gif", "x"])},
               {"url": st.text(max_size=12), "media_url_https": st.text(max_size=20)})
dm_data = shaped({"text": st.text(max_size=200)},
                 {"entities": shaped({"urls": st.lists(url, max_size=2)}, {}),
                  "attachment": shaped({"type": st.just("media"), "media": media}, {}),
                  "quick_reply_response": shaped({"type": st.just("options")}, {"metadata": st.text(max_size=20)})})
dm_event = shaped({"type": st.sampled_from(["message_create", "message_create", "typing"]), "id": digits,
                   "created_timestamp": st.integers(0, 2**45).map(str),
                   "message_create": shaped({"sender_id": st.one_of(digits, st.just(X_ACCOUNT)),
                                             "target": shaped({"recipient_id": st.one_of(st.just(X_ACCOUNT), digits)}, {}),
                                             "message_data": dm_data}, {"source_app_id": digits})}, {})
x_body = st.one_of(
    shaped({"for_user_id": st.one_of(st.just(X_ACCOUNT), digits), "direct_message_events": st.lists(dm_event, max_size=3)},
           {"users": junk}),
    shaped({"data": shaped({"event_type": st.sampled_from(["dm.received", "dm.sent", "follow.follow", ""]),
                            "filter": shaped({"user_id": st.one_of(st.just(X_ACCOUNT), digits)}, {}),
                            "payload": shaped({"direct_message_events": st.lists(dm_event, max_size=3)}, {})}, {})}, {}),
    junk,
)
BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-"
crc_token = st.one_of(st.text(alphabet=BASE64, min_size=1, max_size=300),  # up to 256 are X's shape: answered
                      st.text(max_size=60), st.just(""), st.just('{"for_user_id": "1"}'))


def extreme_bodies() -> list[tuple[str, bytes]]:
    """(what, body): bodies at and past the size limit, nested past any parser's depth, not UTF-8, wrongly typed."""
    text = "Hilfe " * 10
    padding = b" " * (MAX_BODY - 200)
    return [
        ("just under the size limit", b'{"object": "instagram", "entry": [], "pad": "' + padding + b'"}'),
        ("past the size limit", b'{"pad": "' + b"x" * MAX_BODY + b'"}'),
        ("nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000),
        ("nested objects 50,000 deep", b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
        ("not UTF-8", b'{"object": "instagram", "entry": [{"id": "\xff\xfe"}]}'),
        ("lone surrogate", json.dumps({"object": "instagram", "entry": [{"id": ACCOUNT, "time": 1, "messaging": [
            {"sender": {"id": "5551"}, "recipient": {"id": ACCOUNT}, "timestamp": 1, "message": {"mid": "m-sur", "text": "\ud800"}}]}]},
            ensure_ascii=True).encode()),
        ("a number too large", b'{"object": "page", "entry": [{"id": 1' + b"0" * 5000 + b', "time": 1e999}]}'),
        ("entries of the wrong type", json.dumps({"object": "instagram", "entry": {"id": ACCOUNT}, "data": [text]}).encode()),
        ("empty", b""),
    ]
