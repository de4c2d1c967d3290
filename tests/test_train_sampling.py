import random

from agentdistill.train.sampling import ShuffledLengthGroupedSampler


def _batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i:i + size] for i in range(0, len(order), size)]


def test_every_example_comes_once_per_epoch_and_the_remainder_batch_last():
    lengths = [random.Random(1).randint(10, 1000) for _ in range(103)]
    order = list(ShuffledLengthGroupedSampler(lengths, batch_size=4, window_batches=8))
    assert sorted(order) == list(range(103))
    assert len(_batches(order, 4)[-1]) == 3


def test_batches_hold_neighbours_in_length_but_come_in_no_length_order():
    rng = random.Random(0)
    lengths = [rng.choice([60, 90, 400, 700, 1100]) + rng.randint(0, 20) for _ in range(400)]
    sampler = ShuffledLengthGroupedSampler(lengths, batch_size=4, window_batches=16)
    batches = _batches(list(sampler), 4)
    # similar length within a batch: the spread is far below a random batch's
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    random_order = rng.sample(range(400), 400)
    random_spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b)
                        for b in _batches(random_order, 4)) / 100
    assert spread < random_spread / 4
    # ...but the batch means do not walk down from long to short as transformers' group_by_length does
    means = [sum(lengths[i] for i in b) / len(b) for b in batches]
    descents = sum(a >= b for a, b in zip(means, means[1:], strict=False))
    assert 0.3 < descents / (len(means) - 1) < 0.7


def test_the_order_is_fixed_by_seed_and_epoch_so_a_resumed_run_replays_it():
    lengths = list(range(50))
    a = ShuffledLengthGroupedSampler(lengths, batch_size=4, seed=3)
    b = ShuffledLengthGroupedSampler(lengths, batch_size=4, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
