"""The digits GAN, its judge and its feature network: shapes, and that training learns digits.

Measured on the tiny world (seeds 0-2 x ATEN_CPU_CAPABILITY {default, avx2, avx512}, 1 core, ~20 s to
build): judge test accuracy 0.976-0.983, feature net 0.967-0.981; the tiny GAN after 3 000 steps: FID vs
real test digits 0.63-1.06 (untrained: see the test), judge class shares 0.058-0.147 on the 4 000-latent
bank (seed 0, avx512: (%) [11, 9, 11, 11, 9, 7, 12, 10, 7, 13]). At 1 500 steps the GAN dropped modes on
some seeds and capabilities (one class at 0.1 %, FID up to 8.3), and every later test inherited that.
"""

import torch

from tests.gan_world import CPU, TINY_GAN
from unlearning.generation_metrics import class_shares, features, frechet_distance, generate_images, predicted_classes
from unlearning.models import build_model
from unlearning.tasks import GENERATION


def test_gan_maps_latents_to_images_in_the_unit_range_for_any_batch():
    gan = build_model("digits-gan", TINY_GAN)
    for batch in (1, 5):
        images = gan(torch.randn(batch, gan.config.latent_dim))
        assert images.shape == (batch, 1, 8, 8)
        assert images.min() >= 0 and images.max() <= 1
    z = torch.randn(3, gan.config.latent_dim)
    assert torch.equal(gan.generate(z), gan(z))
    assert gan.task_kind == "generation"


def test_gan_exposes_generator_discriminator_and_the_convolutions_ewc_covers():
    gan = build_model("digits-gan", TINY_GAN)
    generator = {id(p) for p in gan.generator_parameters()}
    discriminator = {id(p) for p in gan.discriminator.parameters()}
    convolutions = {id(p) for p in gan.synthesis_convolutions()}
    assert generator | discriminator == {id(p) for p in gan.parameters()}
    assert not generator & discriminator
    assert convolutions < {id(p) for p in gan.synthesis.parameters()}
    assert gan.discriminator(torch.rand(4, 1, 8, 8)).shape == (4,)
    assert gan.w_avg.shape == (gan.config.w_dim,)


def test_judge_and_feature_net_take_images_or_flat_rows():
    for name in ("digits-judge-cnn", "digits-feature-net"):
        net = build_model(name, {})
        images = torch.rand(3, 1, 8, 8)
        assert net(images).shape == (3, 10)
        assert torch.equal(net(images), net(images.reshape(3, 64)))
        assert net.task_kind == "classification" and net.config.classes == 10
    feature_net = build_model("digits-feature-net", {"feature_dim": 20})
    assert feature_net.features(torch.rand(3, 64)).shape == (3, 20)


def test_judge_and_feature_net_classify_real_test_digits(gan_world):
    # measured over seeds 0-2 x {default, avx2, avx512}: judge 0.976-0.983, feature net 0.967-0.981; bound 0.95
    for net in (gan_world.judge, gan_world.feature_net):
        accuracy = (predicted_classes(net, gan_world.test_images, CPU) == gan_world.test_labels).float().mean()
        assert accuracy > 0.95


def test_trained_gan_generates_every_class(gan_world):
    shares = class_shares(gan_world.judge, generate_images(gan_world.gan, gan_world.bank, CPU), CPU)
    # measured over seeds 0-2 x {default, avx2, avx512}: min share 0.058-0.079, max 0.123-0.147; bounds 0.03 and
    # 0.25. A collapsed GAN would put most mass on one or two classes (the 1 500-step GAN had a class at 0.001).
    assert shares.min() >= 0.03
    assert shares.max() <= 0.25


def test_training_brings_generated_features_close_to_real_ones(gan_world):
    real = features(gan_world.feature_net, gan_world.test_images, CPU)
    untrained = build_model("digits-gan", TINY_GAN)
    fid_untrained = frechet_distance(features(gan_world.feature_net, generate_images(untrained, gan_world.bank, CPU), CPU), real)
    fid_trained = frechet_distance(features(gan_world.feature_net, generate_images(gan_world.gan, gan_world.bank, CPU), CPU), real)
    # measured over seeds 0-2 x {default, avx2, avx512}: untrained 44.6-47.7, trained 0.63-1.06; bounds 2.5 and
    # 0.1 x untrained.
    assert fid_trained < 2.5
    assert fid_trained < 0.1 * fid_untrained


def test_training_tracks_the_mean_of_mapping_outputs(gan_world):
    with torch.no_grad():
        mean_w = gan_world.gan.mapping(gan_world.bank).mean(dim=0)
    # w_avg follows the raw generator's mapping while the model holds the EMA's, so they agree only roughly.
    # measured over seeds 0-2 x {default, avx2, avx512}: cosine 0.997-0.998; bound 0.9
    assert gan_world.gan.w_avg.abs().sum() > 0
    assert torch.nn.functional.cosine_similarity(gan_world.gan.w_avg, mean_w, dim=0) > 0.9


def test_generation_task_refuses_per_example_supervised_losses():
    outputs = torch.zeros(2, 1, 8, 8)
    for call in (lambda: GENERATION.loss(outputs, outputs), lambda: GENERATION.do_nothing_loss(outputs, outputs),
                 lambda: GENERATION.divergence(outputs, outputs), lambda: GENERATION.do_nothing_divergence(outputs, outputs)):
        try:
            call()
        except NotImplementedError as error:
            assert "generation methods" in str(error)
        else:
            raise AssertionError("Generation task computed a supervised loss")
    assert GENERATION.kind == "generation"
