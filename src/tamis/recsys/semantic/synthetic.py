"""A generated catalogue with latent topics, for tests and the SRA-CL demo.

Items belong to topics and carry template text built from that topic's words;
users follow topic-coherent sequences. The known answer: an item's semantic
neighbours are the items of its own topic, and users who share a favourite
topic are each other's semantic neighbours.
"""

from __future__ import annotations

import numpy as np

from tamis.recsys.data.dataset import InteractionData

__all__ = ["TOPICS", "topic_catalogue"]

#: Topic -> (category name, product nouns).
TOPICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "astronomy": (
        "Telescopes & Optics",
        ("telescope", "eyepiece", "star chart", "moon filter", "equatorial mount"),
    ),
    "baking": (
        "Kitchen & Baking",
        ("bread flour", "stand mixer", "loaf pan", "pastry brush", "sourdough starter"),
    ),
    "gardening": (
        "Garden & Outdoor",
        ("pruning shears", "seed tray", "compost bin", "watering can", "tomato seeds"),
    ),
    "fishing": (
        "Fishing Gear",
        ("fishing rod", "spinning reel", "fly lure", "tackle box", "fishing line"),
    ),
    "painting": (
        "Art Supplies",
        ("oil paint set", "canvas board", "sable brush", "palette knife", "easel"),
    ),
    "cycling": (
        "Bikes & Cycling",
        ("bike helmet", "chain lube", "road tyre", "cycling gloves", "bike pump"),
    ),
    "chemistry": (
        "Lab Supplies",
        ("beaker set", "test tubes", "pipette", "lab goggles", "bunsen burner"),
    ),
    "music": (
        "Musical Instruments",
        ("guitar strings", "capo", "metronome", "drum sticks", "music stand"),
    ),
}
ADJECTIVES = ("compact", "professional", "beginner", "deluxe", "classic", "portable")


def topic_catalogue(
    n_users: int = 300,
    n_topics: int = 6,
    items_per_topic: int = 20,
    min_len: int = 6,
    max_len: int = 14,
    stay: float = 0.9,
    follow: float = 0.6,
    seed: int = 0,
) -> tuple[InteractionData, np.ndarray]:
    """Users whose sequences stay inside a favourite topic.

    Each user picks a favourite topic; at each step the next item comes from
    that topic with probability ``stay`` (else from a random topic). Inside a
    topic the next item is the following one on the topic's ring with
    probability ``follow`` (a sequential signal), else a random item of it.

    Args:
        n_users: Users.
        n_topics: Topics (at most ``len(TOPICS)``).
        items_per_topic: Items per topic.
        min_len: Shortest sequence.
        max_len: Longest sequence.
        stay: Probability of staying in the favourite topic.
        follow: Probability of the ring step inside a topic.
        seed: NumPy seed.

    Returns:
        ``(data, topic)``: the dataset (features ``title``, ``categories``,
        ``brand``) and (n_items,) topic of each dense item id.
    """
    if not 1 <= n_topics <= len(TOPICS):
        raise ValueError(f"n_topics must be in [1, {len(TOPICS)}], got {n_topics}")
    rng = np.random.default_rng(seed)
    names = list(TOPICS)[:n_topics]
    n_items = n_topics * items_per_topic
    topic_of = np.arange(n_items) // items_per_topic

    # Item side information from the topic's words.
    titles, cats, brands = {}, {}, {}
    for i in range(n_items):
        category, nouns = TOPICS[names[topic_of[i]]]
        j = i % items_per_topic
        noun, adj = nouns[j % len(nouns)], ADJECTIVES[(j // len(nouns)) % 6]
        titles[f"i{i}"] = f"{adj.title()} {noun} model {j + 1}"
        cats[f"i{i}"] = [category, names[topic_of[i]]]
        brands[f"i{i}"] = f"{names[topic_of[i]].title()}Co"

    # Topic-coherent sequences.
    users, items, times = [], [], []
    clock = 0
    for u in range(n_users):
        favourite = int(rng.integers(n_topics))
        cur = favourite * items_per_topic + int(rng.integers(items_per_topic))
        for _ in range(int(rng.integers(min_len, max_len + 1))):
            users.append(f"u{u}")
            items.append(f"i{cur}")
            times.append(clock)
            clock += 1
            topic = favourite if rng.random() < stay else int(rng.integers(n_topics))
            base = topic * items_per_topic
            if topic == topic_of[cur] and rng.random() < follow:
                cur = base + (cur - base + 1) % items_per_topic
            else:
                cur = base + int(rng.integers(items_per_topic))
    features = {"title": titles, "categories": cats, "brand": brands}
    data = InteractionData.from_raw(users, items, times, None, features, name="topics")
    dense_topic = np.asarray(
        [int(str(r)[1:]) // items_per_topic for r in data.item_ids]
    )
    return data, dense_topic
