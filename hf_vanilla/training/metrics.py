"""BLEU and chrF (sacreBLEU, with its signature), accuracy and macro-F1 as `evaluate` metrics that need no hub.

`evaluate.load("sacrebleu")` downloads its script from the hub, which fails offline; these are ordinary
`evaluate.Metric` subclasses, used the same way:

    >>> from hf_vanilla.metrics import load_metric
    >>> bleu = load_metric("sacrebleu")
    >>> round(bleu.compute(predictions=["the cat sat on the mat"], references=[["the cat sat on the mat"]])["score"])
    100
"""

import datasets
import evaluate
import sacrebleu


def _references(references):
    """One reference per prediction (str) or several (list of str) -> sacrebleu's streams: one list per reference."""
    references = [[r] if isinstance(r, str) else list(r) for r in references]
    count = len(references[0]) if references else 1
    if any(len(r) != count for r in references):
        raise ValueError("Every prediction needs the same number of references.")
    return [[r[i] for r in references] for i in range(count)]


_TEXT_FEATURES = [
    datasets.Features({"predictions": datasets.Value("string"),
                       "references": datasets.Sequence(datasets.Value("string"))}),
    datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
]
_LABEL_FEATURES = datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")})


class _SacreBleuMetric(evaluate.Metric):
    """A sacreBLEU corpus metric: its score and its reproducibility signature."""

    scorer = None  # the sacrebleu metric class
    citation = ""

    def _info(self):
        return evaluate.MetricInfo(description=self.__doc__, citation=self.citation, inputs_description="",
                                   features=_TEXT_FEATURES)

    def _compute(self, predictions, references):
        metric = self.scorer()
        result = metric.corpus_score(list(predictions), _references(references))
        return {"score": result.score, "signature": str(metric.get_signature()), **self._details(result)}

    def _details(self, result):
        return {}


class SacreBleu(_SacreBleuMetric):
    """Corpus BLEU of sacreBLEU (13a tokenisation, exponential smoothing), with its reproducibility signature."""

    scorer, citation = sacrebleu.BLEU, "Post, 2018"

    def _details(self, result):
        return {"counts": result.counts, "precisions": result.precisions, "bp": result.bp,
                "sys_len": result.sys_len, "ref_len": result.ref_len}


class ChrF(_SacreBleuMetric):
    """Corpus chrF of sacreBLEU (character 6-grams, beta 2), with its signature."""

    scorer, citation = sacrebleu.CHRF, "Popović, 2015"


class _LabelMetric(evaluate.Metric):
    """A metric over predicted and reference class ids."""

    def _info(self):
        return evaluate.MetricInfo(description=self.__doc__, citation="", inputs_description="",
                                   features=_LABEL_FEATURES)


class Accuracy(_LabelMetric):
    """Share of predictions equal to the reference label."""

    def _compute(self, predictions, references):
        if not references:
            raise ValueError("accuracy of an empty set is undefined")
        return {"accuracy": sum(p == r for p, r in zip(predictions, references)) / len(references)}


class MacroF1(_LabelMetric):
    """Unweighted mean of per-class F1 over every class seen in the references or the predictions."""

    def _compute(self, predictions, references):
        scores = []
        for label in sorted(set(predictions) | set(references)):
            true_positive = sum(p == label and r == label for p, r in zip(predictions, references))
            predicted = sum(p == label for p in predictions)
            actual = sum(r == label for r in references)
            scores.append(2 * true_positive / (predicted + actual) if predicted + actual else 0.0)
        return {"macro_f1": sum(scores) / len(scores)}


METRICS = {"sacrebleu": SacreBleu, "chrf": ChrF, "accuracy": Accuracy, "macro_f1": MacroF1}


def load_metric(name, **kwargs):
    """The offline stand-in for `evaluate.load(name)` for the metrics this project reports."""
    if name not in METRICS:
        raise ValueError(f"Unknown metric {name!r}: choose one of {', '.join(METRICS)}.")
    return METRICS[name](**kwargs)


def translation_scores(predictions, references):
    """BLEU and chrF of detokenised predictions against one reference each, with both signatures."""
    bleu = load_metric("sacrebleu").compute(predictions=predictions, references=references)
    chrf = load_metric("chrf").compute(predictions=predictions, references=references)
    return {"bleu": bleu["score"], "chrf": chrf["score"], "bleu_signature": bleu["signature"],
            "chrf_signature": chrf["signature"]}


def classification_scores(predictions, references):
    """Accuracy and macro-F1 of predicted class ids."""
    return {**load_metric("accuracy").compute(predictions=predictions, references=references),
            **load_metric("macro_f1").compute(predictions=predictions, references=references)}
