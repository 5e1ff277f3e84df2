"""geoalign.models: encoders, losses, pretraining, evaluation and inference (imports torch).

    from geoalign.models import PretrainConfig, pretrain

    config = PretrainConfig.from_yaml("tutorials/configs/houston2013_pixels.yaml")
    result = pretrain(config)                      # checkpoints, CSV/TensorBoard logs
    task = ContrastivePretraining.load_from_checkpoint(result.last_checkpoint)
    embeddings = task.embed(batch)                 # modality -> [N, D]

One encoder per sensor (:func:`build_encoder`), one loss for all (:class:`MultiPositiveInfoNCE`,
computed from one similarity matrix per batch), cross-modal retrieval as the label-free
validation metric (:class:`CrossModalRetrieval`).
"""

from geoalign.models.backbones import (
    AlexNetBackbone,
    MLPBackbone,
    SpectralFrontEnd,
    timm_backbone,
    torchvision_resnet,
)
from geoalign.models.config import (
    CubeDataConfig,
    EncoderConfig,
    HoustonDataConfig,
    LossConfig,
    ModalityConfig,
    OptimConfig,
    PretrainConfig,
    TemporalConfig,
    TrainerConfig,
    ViewsConfig,
)
from geoalign.models.distributed import GlobalBatchSampler, gather_batch
from geoalign.models.encoders import (
    EncoderOutput,
    ModalityEncoder,
    ModalitySpec,
    ProjectionHead,
    build_encoder,
)
from geoalign.models.losses import (
    ContrastiveOutput,
    MultiPositiveInfoNCE,
    PairwiseInfoNCE,
    Temperature,
    multi_positive_info_nce,
    pairwise_info_nce,
)
from geoalign.models.pretrain import ContrastivePretraining
from geoalign.models.retrieval import CrossModalRetrieval, cross_modal_retrieval
from geoalign.models.run import PretrainResult, pretrain
from geoalign.models.temporal import TemporalAttentionPooling
from geoalign.models.weights import load_backbone_weights

__all__ = [
    "AlexNetBackbone",
    "ContrastiveOutput",
    "ContrastivePretraining",
    "CrossModalRetrieval",
    "CubeDataConfig",
    "EncoderConfig",
    "EncoderOutput",
    "GlobalBatchSampler",
    "HoustonDataConfig",
    "LossConfig",
    "MLPBackbone",
    "ModalityConfig",
    "ModalityEncoder",
    "ModalitySpec",
    "MultiPositiveInfoNCE",
    "OptimConfig",
    "PairwiseInfoNCE",
    "PretrainConfig",
    "PretrainResult",
    "ProjectionHead",
    "SpectralFrontEnd",
    "Temperature",
    "TemporalAttentionPooling",
    "TemporalConfig",
    "TrainerConfig",
    "ViewsConfig",
    "build_encoder",
    "cross_modal_retrieval",
    "gather_batch",
    "load_backbone_weights",
    "multi_positive_info_nce",
    "pairwise_info_nce",
    "pretrain",
    "timm_backbone",
    "torchvision_resnet",
]
