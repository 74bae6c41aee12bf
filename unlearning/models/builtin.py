"""Erasure's own architectures, declared once; pyproject.toml lists each under `erasure.architectures`."""

from unlearning.models import Architecture
from unlearning.models.classifier import ClassifierConfig, DigitsClassifier
from unlearning.models.digits_cnn import DigitsFeatureNet, DigitsJudge, FeatureNetConfig, JudgeConfig
from unlearning.models.gan import DigitsGAN, GanConfig
from unlearning.models.identity import EncoderConfig, IdentityNet, IdentityNetConfig, InversionEncoder
from unlearning.models.restorer import Restorer, RestorerConfig

RESTORER_UNET = Architecture("restorer-unet", Restorer, RestorerConfig, Restorer.task_kind)
DIGITS_MLP = Architecture("digits-mlp", DigitsClassifier, ClassifierConfig, DigitsClassifier.task_kind)
DIGITS_GAN = Architecture("digits-gan", DigitsGAN, GanConfig, DigitsGAN.task_kind)
DIGITS_JUDGE_CNN = Architecture("digits-judge-cnn", DigitsJudge, JudgeConfig, DigitsJudge.task_kind)
DIGITS_FEATURE_NET = Architecture("digits-feature-net", DigitsFeatureNet, FeatureNetConfig, DigitsFeatureNet.task_kind)
DIGITS_GAN_ENCODER = Architecture("digits-gan-encoder", InversionEncoder, EncoderConfig, InversionEncoder.task_kind)
DIGITS_IDENTITY_NET = Architecture("digits-identity-net", IdentityNet, IdentityNetConfig, IdentityNet.task_kind)
