import torch
from train_fixtures import batch

from splat_train import BatchSource, SeededExamples


def _source() -> SeededExamples:
    """Item k's example is a scene seed drawn from its generator; collate renders those scenes."""
    return SeededExamples(
        num_items=5,
        batch_size=2,
        example=lambda item, generator: 1000 * item + int(torch.randint(1000, (1,), generator=generator)),
        collate=batch,
    )


def test_seeded_examples_is_a_batch_source() -> None:
    assert isinstance(_source(), BatchSource)


def test_an_items_example_depends_on_its_seed_not_its_position_in_the_batch() -> None:
    source = _source()
    first = source.make_batch([3, 1], [7, 8]).source_images
    swapped = source.make_batch([1, 3], [8, 7]).source_images
    assert torch.equal(first[0], swapped[1]) and torch.equal(first[1], swapped[0])
    assert not torch.equal(source.make_batch([3], [9]).source_images[0], first[0])
