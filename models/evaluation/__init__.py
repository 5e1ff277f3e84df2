"""geoalign.models.evaluation: what pretraining buys downstream (probe, kNN, finetune, baselines).

    from geoalign.models.evaluation import EvaluationConfig, run_evaluation

    config = EvaluationConfig.from_yaml("tutorials/configs/tempcnn_crops_evaluate.yaml")
    result = run_evaluation(config)            # resumable; tables per label regime
    print(result.tables["all"].markdown())

Building blocks for your own loops: :class:`TaskData` (downstream arrays and targets),
:class:`LabelRegime` (all / k per class / fraction), :func:`extract_features` (frozen encoders,
any subset of modalities), :class:`LinearProbe`, :func:`knn_predict`, :class:`Finetuner`,
:func:`random_forest_predict`, :func:`score_predictions` (torchmetrics) and :func:`evaluate`
(one protocol on one label draw).
"""

from geoalign.models.evaluation.baselines import random_forest_predict
from geoalign.models.evaluation.config import (
    BaselinesConfig,
    DownstreamConfig,
    EvaluationConfig,
    PretrainingSection,
    VariantConfig,
)
from geoalign.models.evaluation.experiment import (
    CellResult,
    EvaluationResult,
    run_evaluation,
    task_fingerprint,
)
from geoalign.models.evaluation.features import (
    FrozenFeatures,
    extract_feature_maps,
    extract_features,
    feature_maps,
    load_encoders,
    random_encoders,
)
from geoalign.models.evaluation.finetune import Finetuner, FinetuneSettings
from geoalign.models.evaluation.metrics import PRIMARY, Scores, score_predictions
from geoalign.models.evaluation.probes import LinearProbe, knn_predict
from geoalign.models.evaluation.protocols import (
    ForestSettings,
    KnnSettings,
    ProbeSettings,
    ProtocolSettings,
    evaluate,
)
from geoalign.models.evaluation.regimes import LabelRegime
from geoalign.models.evaluation.report import ResultTable
from geoalign.models.evaluation.tasks import IGNORE, TaskData

__all__ = [
    "IGNORE",
    "PRIMARY",
    "BaselinesConfig",
    "CellResult",
    "DownstreamConfig",
    "EvaluationConfig",
    "EvaluationResult",
    "FinetuneSettings",
    "Finetuner",
    "ForestSettings",
    "FrozenFeatures",
    "KnnSettings",
    "LabelRegime",
    "LinearProbe",
    "PretrainingSection",
    "ProbeSettings",
    "ProtocolSettings",
    "ResultTable",
    "Scores",
    "TaskData",
    "VariantConfig",
    "evaluate",
    "extract_feature_maps",
    "extract_features",
    "feature_maps",
    "knn_predict",
    "load_encoders",
    "random_encoders",
    "random_forest_predict",
    "run_evaluation",
    "score_predictions",
    "task_fingerprint",
]
