"""Every optimizer of `pytorch-optimizer` as a plugin, its schema read from the constructor.

pytorch-optimizer (Kim, https://github.com/kozistr/pytorch_optimizer) is the maintained
reference implementation of well over a hundred published optimizers; the lab wraps it rather
than rewriting them. One plugin per name of `get_supported_optimizers()`, plus the wrappers the
library exports apart (the SAM family, Lookahead, OrthoGrad, TRAC, the schedule-free wrapper),
which take a base optimizer from a small `base` choice.

Schemas are read from the constructors' signatures (`pto_schema.py`) into `pto_manifest.json`,
so that listing the catalogue does not import the library; it is imported when one of its
optimizers is built, with the adapters of `pto_adapters.py`. What the lab adds
is curated per optimizer: title, family, a summary with the update rule, the paper, and needs:
the SAM family and AliG step through a closure, AdaHessian and Sophia-H take Hessian-vector
products through `create_graph`, Muon-type optimizers get their parameter groups from roles
(hidden matrices → Muon, the rest → AdamW, as `muon.py` splits them) and schedule-free ones are
switched between train and eval. Optimizers drawing random numbers get a `seed` and own their
random state, so a state-dict round trip continues identically. Names that torch.optim or the
lab's own modules already use get the id `pto-<name>`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from descentlab.engine.params import Param
from descentlab.engine.plugin import CONFORMANCE_CHECKS, Needs, OptimizerPlugin, Role
from descentlab.plugins.optimizers import pto_schema, torch_optim
from descentlab.plugins.optimizers.muon import split
from descentlab.plugins.optimizers.pto_schema import WRAPPERS, LibraryEntry

RESERVED_IDS = frozenset(
    [
        "swan",
        "spectra",
        "symmetric",
        "auon",
        "auon-paper",
        "ortho-svd",
        "nag-gs",
        "mfac",
        "egn",
        "newton",
        "lazy-newton",
        "entropy-sgd",
        "fosi",
        "mezo",
        "langevin",
        "diffgrad",
        "diffgrad-published",
        "dog",
        "ldog",
        "optimistic",
        "random-scaled-sgdm",
        "noise",
        "lookahead",
        "cautious",
        "ema",
        "natural-gradient",
        "muon",
    ]
)
"""Ids the lab's hand-written optimizers use; a library name among them becomes `pto-<name>`."""

# --------------------------------------------------------------------------------------------
# Curated descriptors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Info:
    """What the lab says about one library optimizer beyond its signature."""

    title: str
    family: str
    summary: str
    reference: str = ""


_ADAM = "m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g²"

_CURATED: dict[str, _Info] = {
    "a2grad": _Info(
        "A2Grad",
        "adaptive",
        "Adaptive accelerated SGD: Nesterov-type acceleration with an adaptive step from "
        "running averages of squared gradient differences (uniform, incremental or exponential "
        "averaging).",
        "Deng, Cheng & Lan, Optimal Adaptive and Accelerated Stochastic Gradient Descent, "
        "arXiv:1810.00553, 2018.",
    ),
    "accsgd": _Info(
        "AccSGD",
        "sgd",
        "Accelerated SGD of Jain et al.: a momentum method coupling a short gradient step with "
        "a long step scaled by κ and ξ, provably faster than heavy ball on least squares.",
        "Kidambi, Netrapalli, Jain & Kakade, On the insufficiency of existing momentum schemes "
        "for stochastic optimization, ICLR 2018.",
    ),
    "adabelief": _Info(
        "AdaBelief",
        "adaptive",
        f"Adam with the belief in the gradient as denominator: {_ADAM.split(',')[0]}, "
        "s ← β₂s + (1 − β₂)(g − m)² + ε, θ ← θ − η·m̂/(√ŝ + ε); large steps where the "
        "gradient agrees with its prediction m.",
        "Zhuang et al., AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed "
        "Gradients, NeurIPS 2020.",
    ),
    "adabound": _Info(
        "AdaBound",
        "adaptive",
        f"Adam whose per-coordinate step η/√v̂ is clipped to bounds that converge to final_lr "
        "(lower 0.1·(1 − 1/(γt + 1)), upper 0.1·(1 + 1/(γt))), moving smoothly from Adam to "
        f"SGD; {_ADAM}.",
        "Luo, Xiong, Liu & Sun, Adaptive Gradient Methods with Dynamic Bound of Learning Rate, "
        "ICLR 2019.",
    ),
    "adahessian": _Info(
        "AdaHessian",
        "second-order",
        "Adam with the Hessian diagonal in place of g²: D ≈ z ⊙ (Hz) from Hutchinson probes z "
        "(spatially averaged), v ← β₂v + (1 − β₂)D², θ ← θ − η·m̂/(√v̂)^k. Needs the graph of "
        "the backward pass for the Hessian-vector products.",
        "Yao et al., ADAHESSIAN: An Adaptive Second Order Optimizer for Machine Learning, "
        "AAAI 2021.",
    ),
    "adan": _Info(
        "Adan",
        "adaptive",
        "Adaptive Nesterov momentum: averages of g, of the gradient difference g_t − g_{t−1} "
        "and of the square of g + β₂(g_t − g_{t−1}); the step combines the first two over the "
        "root of the third.",
        "Xie, Zhou, Li, Lin & Yan, Adan: Adaptive Nesterov Momentum Algorithm for Faster "
        "Optimizing Deep Models, IEEE TPAMI 2024.",
    ),
    "adopt": _Info(
        "ADOPT",
        "adaptive",
        "Adam with the current gradient left out of its own denominator: g is normalised by "
        "the previous v, clipped, then averaged into m, θ ← θ − η·m; converges for any β₂.",
        "Taniguchi et al., ADOPT: Modified Adam Can Converge with Any β₂ with the Optimal "
        "Rate, NeurIPS 2024.",
    ),
    "ademamix": _Info(
        "AdEMAMix",
        "adaptive",
        "Adam with a second, slow momentum m₂ (β₃ ≈ 0.9999): θ ← θ − η·(m̂₁ + α·m₂)/(√v̂ + ε), "
        "so gradients thousands of steps old still contribute.",
        "Pagliardini, Ablin & Grangier, The AdEMAMix Optimizer: Better, Faster, Older, ICLR 2025.",
    ),
    "amos": _Info(
        "Amos",
        "adaptive",
        "Adam-like step scaled by a model-oriented target scale, with adaptive decoupled "
        "weight decay that pulls each tensor toward that scale and a decaying effective step.",
        "Tian & Parikh, Amos: An Adam-style Optimizer with Adaptive Weight Decay towards "
        "Model-Oriented Scale, arXiv:2210.11693, 2022.",
    ),
    "apollo": _Info(
        "APOLLO",
        "memory-efficient",
        "AdamW in a random low-rank projection of the gradient, used only to estimate a "
        "channel- or tensor-wise scaling of the raw gradient: SGD-like memory, AdamW-like "
        "steps.",
        "Zhu et al., APOLLO: SGD-like Memory, AdamW-level Performance, MLSys 2025.",
    ),
    "came": _Info(
        "CAME",
        "memory-efficient",
        "Adafactor's factored second moment plus a factored confidence term, the variance of "
        "the update around its momentum, that scales the step down where updates are "
        "unstable.",
        "Luo et al., CAME: Confidence-guided Adaptive Memory Efficient Optimization, ACL 2023.",
    ),
    "dadaptadagrad": _Info(
        "D-Adapt AdaGrad",
        "lr-free",
        "AdaGrad whose step is scaled by an estimate d of the distance to the solution, grown "
        "from d₀ by a lower bound built from past gradients: no learning rate to tune (lr "
        "multiplies d, 1 by default).",
        "Defazio & Mishchenko, Learning-Rate-Free Learning by D-Adaptation, ICML 2023.",
    ),
    "dadaptadam": _Info(
        "D-Adapt Adam",
        "lr-free",
        "Adam scaled by the D-Adaptation distance estimate d (grown from d₀): the learning "
        "rate is learned, lr is a multiplier of it (1 by default).",
        "Defazio & Mishchenko, Learning-Rate-Free Learning by D-Adaptation, ICML 2023.",
    ),
    "dadaptadan": _Info(
        "D-Adapt Adan",
        "lr-free",
        "Adan scaled by the D-Adaptation distance estimate d; lr is a multiplier of d.",
        "Defazio & Mishchenko, Learning-Rate-Free Learning by D-Adaptation, ICML 2023.",
    ),
    "dadaptlion": _Info(
        "D-Adapt Lion",
        "lr-free",
        "Lion's sign update scaled by the D-Adaptation distance estimate d; lr multiplies d.",
        "Defazio & Mishchenko, Learning-Rate-Free Learning by D-Adaptation, ICML 2023.",
    ),
    "dadaptsgd": _Info(
        "D-Adapt SGD",
        "lr-free",
        "SGD with momentum scaled by the D-Adaptation distance estimate d; lr multiplies d.",
        "Defazio & Mishchenko, Learning-Rate-Free Learning by D-Adaptation, ICML 2023.",
    ),
    "prodigy": _Info(
        "Prodigy",
        "lr-free",
        "Adam scaled by a distance estimate d that grows faster than D-Adaptation's (weighted "
        "by d itself): the step size is learned; lr is a multiplier of d (1 by default).",
        "Mishchenko & Defazio, Prodigy: An Expeditiously Adaptive Parameter-Free Learner, "
        "ICML 2024.",
    ),
    "galore": _Info(
        "GaLore",
        "memory-efficient",
        "AdamW in a low-rank gradient subspace: the gradient of a matrix is projected on its "
        "top singular vectors (refreshed periodically), Adam runs there, and the step is "
        "projected back; parameters without a rank group step as AdamW.",
        "Zhao et al., GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection, "
        "ICML 2024.",
    ),
    "kron": _Info(
        "Kron (PSGD)",
        "second-order",
        "Preconditioned SGD with a Kronecker-factored preconditioner P = QᵀQ fitted online so "
        "that P·(Hv) matches v on random probes (Lie-group updates of the triangular factors), "
        "applied to the momentum; updated with a probability that decays over training.",
        "Li, Preconditioned Stochastic Gradient Descent, IEEE TNNLS 2018; Kron variant by "
        "Evan Walters et al. (psgd_torch).",
    ),
    "lamb": _Info(
        "LAMB",
        "adaptive",
        "Layer-wise adaptive Adam: the Adam update u of each tensor (with decoupled decay) is "
        "rescaled by the trust ratio ‖θ‖/‖u‖, θ ← θ − η·(‖θ‖/‖u‖)·u, for large-batch training.",
        "You et al., Large Batch Optimization for Deep Learning: Training BERT in 76 minutes, "
        "ICLR 2020.",
    ),
    "lars": _Info(
        "LARS",
        "sgd",
        "Layer-wise adaptive rate scaling: SGD with momentum where each tensor's step is "
        "scaled by the trust ratio c·‖θ‖/(‖g‖ + λ‖θ‖).",
        "You, Gitman & Ginsburg, Large Batch Training of Convolutional Networks, "
        "arXiv:1708.03888, 2017.",
    ),
    "laprop": _Info(
        "LaProp",
        "adaptive",
        "Adam with momentum applied after the adaptive scaling: m ← β₁m + (1 − β₁)·g/√v̂, "
        "θ ← θ − η·m̂, which decouples momentum from adaptivity.",
        "Ziyin, Wang & Ueda, LaProp: Separating Momentum and Adaptivity in Adam, "
        "arXiv:2002.04839, 2020.",
    ),
    "lion": _Info(
        "Lion",
        "sign",
        "Evolved sign momentum: θ ← θ − η·sign(β₁m + (1 − β₁)g), then m ← β₂m + (1 − β₂)g; "
        "every coordinate moves by exactly η.",
        "Chen et al., Symbolic Discovery of Optimization Algorithms, NeurIPS 2023.",
    ),
    "madgrad": _Info(
        "MADGRAD",
        "adaptive",
        "Momentumised dual averaging: sums of λ_t·g and λ_t·g² define a dual-averaged point "
        "z = θ₀ − s/∛v, and θ moves toward z with momentum.",
        "Defazio & Jelassi, A Momentumized, Adaptive, Dual Averaged Gradient Method, JMLR 23, "
        "2022.",
    ),
    "mars": _Info(
        "MARS",
        "adaptive",
        "Variance-reduced AdamW: the gradient is corrected by γ·β₁/(1 − β₁)·(g_t − g_{t−1}) "
        "(STORM-style), clipped, then fed to AdamW (or Lion / Shampoo by mars_type).",
        "Yuan, Liu, Wu, Zhou & Gu, MARS: Unleashing the Power of Variance Reduction for "
        "Training Large Models, ICML 2025.",
    ),
    "novograd": _Info(
        "NovoGrad",
        "adaptive",
        "Adam with a layer-wise second moment: v ← β₂v + (1 − β₂)‖g‖² per tensor, "
        "m ← β₁m + g/√v + λθ, θ ← θ − η·m.",
        "Ginsburg et al., Stochastic Gradient Methods with Layer-wise Adaptive Moments for "
        "Training of Deep Networks, arXiv:1905.11286, 2019.",
    ),
    "ranger": _Info(
        "Ranger",
        "adaptive",
        "RAdam wrapped in Lookahead (slow weights pulled toward the fast ones every k steps by "
        "α) with gradient centralisation.",
        "Wright, Ranger, 2019 (RAdam: Liu et al., ICLR 2020; Lookahead: Zhang et al., "
        "NeurIPS 2019).",
    ),
    "ranger21": _Info(
        "Ranger21",
        "adaptive",
        "AdamW with positive–negative momentum, adaptive gradient clipping, gradient "
        "centralisation and normalisation, Lookahead, norm loss, and its own warm-up / "
        "warm-down schedule over num_iterations steps.",
        "Wright & Demeure, Ranger21: a synergistic deep learning optimizer, "
        "arXiv:2106.13731, 2021.",
    ),
    "schedulefreeadamw": _Info(
        "Schedule-Free AdamW",
        "schedule-free",
        "AdamW steps z ← z − η·ĝ/(√v̂ + ε) at a point y = (1 − β₁)z + β₁x, and the evaluated "
        "weights x are the running weighted average of z: no decay schedule needed. Gradients "
        "are taken at y (train), the loss is reported at x (eval).",
        "Defazio et al., The Road Less Scheduled, NeurIPS 2024.",
    ),
    "schedulefreeradam": _Info(
        "Schedule-Free RAdam",
        "schedule-free",
        "Schedule-free averaging (gradients at y, iterate average x) over RAdam's rectified "
        "steps, so that neither warm-up nor decay is needed.",
        "Defazio et al., The Road Less Scheduled, NeurIPS 2024.",
    ),
    "schedulefreesgd": _Info(
        "Schedule-Free SGD",
        "schedule-free",
        "z ← z − η·g(y), y = (1 − β)z + βx, x ← running weighted average of z: SGD with "
        "momentum replaced by interpolation and averaging, no schedule needed.",
        "Defazio et al., The Road Less Scheduled, NeurIPS 2024.",
    ),
    "scion": _Info(
        "SCION",
        "orthogonal",
        "Stochastic conditional gradient with norm constraints: each tensor steps along the "
        "linear-minimisation oracle of its norm (spectral for matrices → orthogonalised, sign, "
        "bias norms) applied to its momentum, θ ← θ − η·lmo(m).",
        "Pethick et al., Training Deep Learning Models with Norm-Constrained LMOs, ICML 2025.",
    ),
    "scionlight": _Info(
        "SCION (light)",
        "orthogonal",
        "SCION with its momentum kept in the gradient buffers, saving one buffer per tensor.",
        "Pethick et al., Training Deep Learning Models with Norm-Constrained LMOs, ICML 2025.",
    ),
    "shampoo": _Info(
        "Shampoo",
        "second-order",
        "Kronecker-factored full-matrix AdaGrad: for a matrix G, L ← L + GGᵀ, R ← R + GᵀG, "
        "θ ← θ − η·L^(−1/4)·G·R^(−1/4) (inverse roots recomputed every few steps).",
        "Gupta, Koren & Singer, Shampoo: Preconditioned Stochastic Tensor Optimization, ICML 2018.",
    ),
    "scalableshampoo": _Info(
        "Scalable Shampoo",
        "second-order",
        "Distributed Shampoo: blockwise Kronecker preconditioners with inverse p-th roots by "
        "coupled Newton iteration, started after start_preconditioning_step, and the step "
        "size grafted from SGD / AdaGrad.",
        "Anil et al., Scalable Second Order Optimization for Deep Learning, arXiv:2002.09018, "
        "2020.",
    ),
    "soap": _Info(
        "SOAP",
        "second-order",
        "Adam run in the eigenbasis of Shampoo's preconditioners (refreshed every "
        "precondition_frequency steps): rotate g, Adam step, rotate back.",
        "Vyas et al., SOAP: Improving and Stabilizing Shampoo using Adam, ICLR 2025.",
    ),
    "sophiah": _Info(
        "Sophia-H",
        "second-order",
        "Clipped diagonal Newton: h ← β₂h + (1 − β₂)·z ⊙ (Hz) every update_period steps "
        "(Hutchinson), θ ← θ − η·clip(m/max(p·h, ε), 1). Needs the graph of the backward pass.",
        "Liu et al., Sophia: A Scalable Stochastic Second-order Optimizer for Language Model "
        "Pre-training, ICLR 2024.",
    ),
    "sm3": _Info(
        "SM3",
        "memory-efficient",
        "AdaGrad with a cover of accumulators (one per row and per column of a matrix): each "
        "coordinate's sum of g² is bounded by the min over its covers, O(m + n) memory.",
        "Anil, Gupta, Koren & Singer, Memory-Efficient Adaptive Optimization, NeurIPS 2019.",
    ),
    "tiger": _Info(
        "Tiger",
        "sign",
        "Tight-fisted sign momentum: m ← βm + (1 − β)g, θ ← θ − η·sign(m); Lion with a single β.",
        "Su, Tiger: A Tight-fisted Optimizer, 2023, https://github.com/bojone/tiger.",
    ),
    "yogi": _Info(
        "Yogi",
        "adaptive",
        "Adam with an additive second-moment update, v ← v − (1 − β₂)·sign(v − g²)·g², so v "
        "changes slowly and the effective step cannot blow up.",
        "Zaheer, Reddi, Sachan, Kale & Kumar, Adaptive Methods for Nonconvex Optimization, "
        "NeurIPS 2018.",
    ),
    "swats": _Info(
        "SWATS",
        "adaptive",
        "Starts as Adam and switches to SGD once the projection of Adam's step onto the "
        "gradient gives a stable SGD learning rate estimate.",
        "Keskar & Socher, Improving Generalization Performance by Switching from Adam to SGD, "
        "arXiv:1712.07628, 2017.",
    ),
    "pid": _Info(
        "PID",
        "sgd",
        "SGD as a PID controller: momentum is the integral term, plus a derivative term on "
        "the gradient difference, θ ← θ − η·(g + I·v + D·(g_t − g_{t−1})).",
        "An et al., A PID Controller Approach for Stochastic Optimization of Deep Networks, "
        "CVPR 2018.",
    ),
    "qhadam": _Info(
        "QHAdam",
        "adaptive",
        "Quasi-hyperbolic Adam: numerator (1 − ν₁)g + ν₁m̂ and denominator "
        "√((1 − ν₂)g² + ν₂v̂) + ε mix the raw gradient with the averages.",
        "Ma & Yarats, Quasi-hyperbolic momentum and Adam for deep learning, ICLR 2019.",
    ),
    "qhm": _Info(
        "QHM",
        "sgd",
        "Quasi-hyperbolic momentum: θ ← θ − η·((1 − ν)g + ν·m), m ← βm + (1 − β)g.",
        "Ma & Yarats, Quasi-hyperbolic momentum and Adam for deep learning, ICLR 2019.",
    ),
    "sgdp": _Info(
        "SGDP",
        "sgd",
        "SGD with momentum whose step, for scale-invariant weights (detected by the cosine of "
        "θ and g), is projected onto the tangent space, stopping the norm growth that slows "
        "their effective learning rate.",
        "Heo et al., AdamP: Slowing Down the Slowdown for Momentum Optimizers on "
        "Scale-invariant Weights, ICLR 2021.",
    ),
    "adamp": _Info(
        "AdamP",
        "adaptive",
        "Adam whose step, for scale-invariant weights, is projected onto the tangent space so "
        "that their norm does not grow.",
        "Heo et al., AdamP: Slowing Down the Slowdown for Momentum Optimizers on "
        "Scale-invariant Weights, ICLR 2021.",
    ),
    "signsgd": _Info(
        "signSGD",
        "sign",
        "θ ← θ − η·sign(m) with m ← βm + (1 − β)g (signum; β = 0 is plain signSGD).",
        "Bernstein, Wang, Azizzadenesheli & Anandkumar, signSGD: Compressed Optimisation for "
        "Non-Convex Problems, ICML 2018.",
    ),
    "muon": _Info(
        "Muon (pytorch-optimizer)",
        "orthogonal",
        "pytorch-optimizer's Muon: B ← μB + g, the (Nesterov) momentum of each hidden matrix "
        "is orthogonalised by Newton–Schulz iterations and W ← W − η·NS(B); parameters that "
        "are not hidden matrices step with the built-in AdamW (adamw_* settings).",
        "Jordan et al., Muon: An optimizer for hidden layers in neural networks, 2024, "
        "https://kellerjordan.github.io/posts/muon/.",
    ),
    "adamuon": _Info(
        "AdaMuon",
        "orthogonal",
        "Muon with an Adam-like element-wise second moment of the orthogonalised update and "
        "an RMS-matched scale; non-hidden parameters use AdamW.",
        "Si et al., AdaMuon: Adaptive Muon Optimizer, arXiv:2507.11005, 2025.",
    ),
    "normuon": _Info(
        "NorMuon",
        "orthogonal",
        "Muon followed by neuron-wise (row) normalisation of the orthogonalised update with a "
        "running second moment per row; non-hidden parameters use AdamW.",
        "Li et al., NorMuon: Making Muon more efficient and scalable, arXiv:2510.05491, 2025.",
    ),
    "kate": _Info(
        "KATE",
        "adaptive",
        "Scale-invariant AdaGrad without the square root: b² ← b² + g², m ← m + g²/b² + δ·..., "
        "θ ← θ − η·√m·g/b², invariant to rescaling the data in generalised linear models.",
        "Choudhury et al., Remove that Square Root: A New Efficient Scale-Invariant Version "
        "of AdaGrad, NeurIPS 2024.",
    ),
    "fromage": _Info(
        "Fromage",
        "other",
        "Frobenius-matched gradient descent: each tensor steps by a fixed fraction η of its "
        "norm, θ ← (θ − η·‖θ‖/‖g‖·g)/√(1 + η²), a step controlled in relative terms.",
        "Bernstein, Vahdat, Yue & Liu, On the distance between two neural networks and the "
        "stability of learning, NeurIPS 2020.",
    ),
    "nero": _Info(
        "Nero",
        "other",
        "Neuronal rotator: per-neuron Adam-like normalised steps, with each neuron's weight "
        "vector constrained to zero mean and unit norm (constraints), i.e. rotated on a "
        "sphere.",
        "Liu, Bernstein, Meister & Yue, Learning by Turning: Neural Architecture Aware "
        "Optimisation, ICML 2021.",
    ),
    "aggmo": _Info(
        "AggMo",
        "sgd",
        "Aggregated momentum: several velocities v_i ← β_i·v_i − g with different β_i, "
        "θ ← θ + η·mean(v_i); the large β's accelerate, the small ones damp oscillations.",
        "Lucas, Sun, Zemel & Grosse, Aggregated Momentum: Stability Through Passive Damping, "
        "ICLR 2019.",
    ),
    "alig": _Info(
        "AliG",
        "lr-free",
        "Adaptive learning-rate for interpolation: a Polyak step η_t = min(max_lr, "
        "loss/(‖g‖² + δ)) assuming the optimal loss is 0, with optional momentum. It has no "
        "learning rate in its groups: max_lr caps the step (unset: no cap).",
        "Berrada, Zisserman & Kumar, Training Neural Networks for and by Interpolation, ICML 2020.",
    ),
    "adafactor": _Info(
        "Adafactor (pytorch-optimizer)",
        "memory-efficient",
        "pytorch-optimizer's Adafactor: factored second moments for matrices, optional first "
        "moment, relative step and update clipping.",
        "Shazeer & Stern, Adafactor: Adaptive Learning Rates with Sublinear Memory Cost, "
        "ICML 2018.",
    ),
    "diffgrad": _Info(
        "diffGrad (pytorch-optimizer)",
        "adaptive",
        "pytorch-optimizer's diffGrad: Adam with the momentum damped by the friction "
        "ξ = sigmoid(|g_{t−1} − g_t|), so steps slow down where the gradient barely changes.",
        "Dubey et al., diffGrad: An Optimization Method for Convolutional Neural Networks, "
        "IEEE TNNLS 2020.",
    ),
    "sam": _Info(
        "SAM",
        "sharpness-aware",
        "Sharpness-aware minimisation: ascend to θ + ρ·g/‖g‖, take the gradient there, and "
        "step the base optimizer from θ with it, minimising the worst loss in a ρ-ball. "
        "adaptive scales the perturbation by |θ| (ASAM).",
        "Foret, Kleiner, Mobahi & Neyshabur, Sharpness-Aware Minimization for Efficiently "
        "Improving Generalization, ICLR 2021; ASAM: Kwon et al., ICML 2021.",
    ),
    "wsam": _Info(
        "WSAM",
        "sharpness-aware",
        "Weighted SAM: the base step uses g(θ) plus γ/(1 − γ) times the sharpness term "
        "g(θ + ε) − g(θ), a mix of the plain and the SAM objective.",
        "Yue et al., Sharpness-Aware Minimization Revisited: Weighted Sharpness as a "
        "Regularization Term, KDD 2023.",
    ),
    "bsam": _Info(
        "BSAM",
        "sharpness-aware",
        "Bayesian SAM: a variational (Adam-like) posterior; each step perturbs θ with noise "
        "of variance 1/(N·s), takes a SAM ascent there and updates mean and precision s.",
        "Möllenhoff & Khan, SAM as an Optimal Relaxation of Bayes, ICLR 2023.",
    ),
    "looksam": _Info(
        "LookSAM",
        "sharpness-aware",
        "SAM that computes the ascent gradient only every k steps and reuses its component "
        "orthogonal to g (scaled by α) in between, at almost SGD's cost.",
        "Liu et al., Towards Efficient and Scalable Sharpness-Aware Minimization, CVPR 2022.",
    ),
    "friendlysam": _Info(
        "Friendly SAM",
        "sharpness-aware",
        "SAM whose perturbation removes the full-batch gradient component (estimated by an "
        "EMA with λ), ascending along the batch-specific noise only.",
        "Li et al., Friendly Sharpness-Aware Minimization, CVPR 2024.",
    ),
    "lookahead": _Info(
        "Lookahead (pytorch-optimizer)",
        "wrapper",
        "pytorch-optimizer's Lookahead: the base optimizer takes k fast steps, then the slow "
        "weights move φ ← φ + α(θ − φ) and θ is reset to φ.",
        "Zhang, Lucas, Hinton & Ba, Lookahead Optimizer: k steps forward, 1 step back, "
        "NeurIPS 2019.",
    ),
    "orthograd": _Info(
        "OrthoGrad",
        "wrapper",
        "Removes the component of each gradient along its parameter, g ← g − (⟨g, θ⟩/‖θ‖²)θ "
        "(rescaled to the original norm), then steps the base optimizer: it prevents naive "
        "loss minimisation by weight growth (grokking studies).",
        "Prieto, Barsbey, Mediano & Birdal, Grokking at the Edge of Numerical Stability, "
        "ICLR 2025.",
    ),
    "trac": _Info(
        "TRAC",
        "lr-free",
        "Parameter-free wrapper: the base optimizer's displacement from θ₀ is scaled by a "
        "learned factor S, tuned online by several betas (an Erfi-potential learner), for "
        "lifelong / continual training.",
        "Muppidi, Zhang & Yang, Fast TRAC: A Parameter-Free Optimizer for Lifelong "
        "Reinforcement Learning, NeurIPS 2024.",
    ),
    "schedulefreewrapper": _Info(
        "Schedule-Free wrapper",
        "schedule-free",
        "Schedule-free averaging over any base optimizer: the base steps z at the "
        "interpolation y and the evaluated weights x are the running weighted average.",
        "Defazio et al., The Road Less Scheduled, NeurIPS 2024.",
    ),
}
"""Curated descriptors of the well-known optimizers (library names, wrappers included)."""

_FAMILY: dict[str, str] = {
    **dict.fromkeys(
        [
            "sgd",
            "sgdw",
            "accsgd",
            "aggmo",
            "qhm",
            "pid",
            "lars",
            "sgdp",
            "sgdsai",
            "srmm",
            "tam",
            "pnm",
            "msvag",
            "vsgd",
            "demo",
            "lomo",
        ],
        "sgd",
    ),
    **dict.fromkeys(
        [
            "adam",
            "adamw",
            "nadam",
            "radam",
            "rmsprop",
            "adadelta",
            "adamax",
            "adagc",
            "adai",
            "adamc",
            "adamod",
            "adamp",
            "adams",
            "adanorm",
            "adapnm",
            "adashift",
            "adasmooth",
            "adatam",
            "aida",
            "amos",
            "avagrad",
            "bcos",
            "conda",
            "dualadam",
            "emonavi",
            "exadam",
            "fadam",
            "grokfastadamw",
            "kate",
            "laprop",
            "novograd",
            "padam",
            "simplifiedademamix",
            "spam",
            "stableadamw",
            "stablespam",
            "a2grad",
            "ftrl",
            "grams",
            "rose",
        ],
        "adaptive",
    ),
    **dict.fromkeys(["lion", "signsgd", "tiger", "ano", "emolynx", "focus"], "sign"),
    **dict.fromkeys(
        ["muon", "adamuon", "normuon", "adago", "muonclip", "distributedmuon", "spectralsphere"],
        "orthogonal",
    ),
    **dict.fromkeys(
        [
            "lbfgs",
            "adahessian",
            "sophiah",
            "shampoo",
            "scalableshampoo",
            "soap",
            "kron",
            "splus",
            "dash",
            "apollodqn",
        ],
        "second-order",
    ),
    **dict.fromkeys(
        [
            "adafactor",
            "came",
            "sm3",
            "galore",
            "apollo",
            "adammini",
            "adalomo",
            "fira",
            "flashadamw",
            "adalite",
            "emofact",
            "adamwsn",
            "racs",
            "alice",
            "sara",
            "lorarite",
        ],
        "memory-efficient",
    ),
    **dict.fromkeys(
        ["asgd", "adamg", "dadaptadagrad", "dadaptadam", "dadaptadan", "dadaptlion"], "lr-free"
    ),
    **dict.fromkeys(["magma"], "wrapper"),
    **dict.fromkeys(["gravity"], "other"),
    "gsam": "sharpness-aware",
}
"""Family of every library optimizer without a curated entry (curated ones say their own)."""

_REFERENCES: dict[str, str] = {
    "adadelta": "Zeiler, ADADELTA: An Adaptive Learning Rate Method, arXiv:1212.5701, 2012.",
    "adamax": "Kingma & Ba, Adam: A Method for Stochastic Optimization, ICLR 2015.",
    "adamod": "Ding, Ren, Luo & Sun, An Adaptive and Momental Bound Method for Stochastic "
    "Learning, arXiv:1910.12249, 2019.",
    "adams": "Xie, Sato & Sugiyama, On the Overlooked Pitfalls of Weight Decay and How to "
    "Mitigate Them, NeurIPS 2023.",
    "adai": "Xie, Wang, Zhang, Sato & Sugiyama, Adaptive Inertia: Disentangling the Effects of "
    "Adaptive Learning Rate and Momentum, ICML 2022.",
    "adanorm": "Dubey et al., AdaNorm: Adaptive Gradient Norm Correction based Optimizer for "
    "CNNs, WACV 2023.",
    "adapnm": "Xie, Yuan, Zhu & Sugiyama, Positive-Negative Momentum, ICML 2021.",
    "pnm": "Xie, Yuan, Zhu & Sugiyama, Positive-Negative Momentum, ICML 2021.",
    "adashift": "Zhou et al., AdaShift: Decorrelation and Convergence of Adaptive Learning "
    "Rate Methods, ICLR 2019.",
    "adamg": "Pan et al., Towards Stability of Parameter-free Optimization, arXiv:2405.04376, "
    "2024.",
    "asgd": "Malitsky & Mishchenko, Adaptive Gradient Descent without Descent, ICML 2020.",
    "avagrad": "Savarese, McAllester, Babu & Maire, Domain-independent Dominance of Adaptive "
    "Methods, CVPR 2021.",
    "fadam": "Hwang, FAdam: Adam is a natural gradient optimizer using diagonal empirical "
    "Fisher information, arXiv:2405.12807, 2024.",
    "fira": "Chen et al., Fira: Can We Achieve Full-rank Training of LLMs Under Low-rank "
    "Constraint?, arXiv:2410.01623, 2024.",
    "grokfastadamw": "Lee, Kang, Lee & Kim, Grokfast: Accelerated Grokking by Amplifying Slow "
    "Gradients, arXiv:2405.20233, 2024.",
    "msvag": "Balles & Hennig, Dissecting Adam: The Sign, Magnitude and Variance of Stochastic "
    "Gradients, ICML 2018.",
    "padam": "Chen et al., Closing the Generalization Gap of Adaptive Gradient Methods in "
    "Training Deep Neural Networks, IJCAI 2020.",
    "stableadamw": "Wortsman et al., Stable and low-precision training for large-scale "
    "vision-language models, NeurIPS 2023.",
    "spam": "Huang et al., SPAM: Spike-Aware Adam with Momentum Reset for Stable LLM Training, "
    "ICLR 2025.",
    "adalomo": "Lv et al., AdaLomo: Low-memory Optimization with Adaptive Learning Rate, "
    "ACL Findings 2024.",
    "lomo": "Lv et al., Full Parameter Fine-tuning for Large Language Models with Limited "
    "Resources, ACL 2024.",
    "adammini": "Zhang et al., Adam-mini: Use Fewer Learning Rates To Gain More, ICLR 2025.",
    "ftrl": "McMahan et al., Ad Click Prediction: a View from the Trenches, KDD 2013.",
    "gravity": "Bahrami & Zadeh, Gravity Optimizer: a Kinematic Approach on Optimization in "
    "Deep Learning, arXiv:2101.09192, 2021.",
    "apollodqn": "Ma, Apollo: An Adaptive Parameter-wise Diagonal Quasi-Newton Method for "
    "Nonconvex Stochastic Optimization, arXiv:2009.13586, 2020.",
    "splus": "Frans, Levine & Abbeel, A Stable Whitening Optimizer for Efficient Neural "
    "Network Training, arXiv:2506.07254, 2025.",
    "simplifiedademamix": "Morwani et al., Connections between Schedule-Free Optimizers, "
    "AdEMAMix, and Accelerated SGD Variants, arXiv:2502.02431, 2025.",
    "sgdw": "Loshchilov & Hutter, Decoupled Weight Decay Regularization, ICLR 2019.",
    "gsam": "Zhuang et al., Surrogate Gap Minimization Improves Sharpness-Aware Training, "
    "ICLR 2022.",
}
"""Papers of uncurated optimizers whose docstrings do not name them."""


# --------------------------------------------------------------------------------------------
# Plugins
# --------------------------------------------------------------------------------------------

CLOSURE = frozenset({"sam", "wsam", "bsam", "looksam", "friendlysam", "alig", "lbfgs"})
"""Optimizers whose step needs a closure (the library raises NoClosureError without one)."""

GRADIENTS_FIRST = frozenset({"sam", "bsam", "looksam", "friendlysam"})
"""Closure optimizers that read `.grad` at θ before their first closure call."""

CREATE_GRAPH = frozenset({"adahessian", "sophiah"})
"""Optimizers taking Hutchinson Hessian-vector products through `torch.autograd.grad(p.grad)`."""

MUON_TYPE = frozenset({"muon", "adamuon", "normuon", "adago", "muonclip"})
"""Optimizers whose param groups carry `use_muon`: hidden matrices vs the AdamW part."""

TRAIN_EVAL = frozenset(
    {"schedulefreeadamw", "schedulefreeradam", "schedulefreesgd", "splus", "schedulefreewrapper"}
)
"""Optimizers that train at one point and evaluate at another (`train()` / `eval()`)."""

RANDOM = frozenset(
    {"adahessian", "sophiah", "bsam", "gravity", "racs", "scion", "scionlight", "spam", "kron"}
)
"""Optimizers drawing random numbers from the global generators (probes, noise, masks)."""

UNRUNNABLE: dict[str, str] = {
    "adalomo": "AdaLOMO fuses the update into the backward pass: it takes the model and "
    "computes gradients itself in fused_backward(loss, lr), so it cannot step on the "
    "gradients the lab's loop computes.",
    "lomo": "LOMO fuses the update into the backward pass: it takes the model and computes "
    "gradients itself in fused_backward(loss, lr), so it cannot step on the gradients the "
    "lab's loop computes.",
    "adammini": "Adam-mini partitions parameters by the names of a transformer's modules "
    "(embeddings, heads, attention blocks given num_embeds/num_heads) from the model itself, "
    "which the lab's optimizer factory does not receive.",
    "distributedmuon": "DistributedMuon shards its work over a torch.distributed process "
    "group, which the lab's single-process loop does not initialise; use pto-muon.",
    "demo": "DeMo exchanges compressed momenta over a torch.distributed process group, which "
    "the lab's single-process loop does not initialise.",
    "lorarite": "LoRA-RITE optimizes LoRA factor pairs (A, B) laid out as consecutive "
    "parameters of LoRA adapters; the lab's tasks have no LoRA-structured parameters.",
    "magma": "Magma needs an optimizer instance whose state it masks, and the exclusion set "
    "of parameter tensors; as a wrapper of torch's AdamW its masking draws random numbers "
    "inside the inner optimizer, which the lab cannot own. Not supported here.",
    "spectralsphere": "SpectralSphere accepts only 2-D parameters (it raises ValueError on "
    "anything else), and every task in the lab has biases or vector parameters.",
    "gsam": "GSAM needs the model and an external rho scheduler at construction and its own "
    "(outputs, loss) closure set per batch; it does not fit step(closure).",
}
"""Library optimizers listed but refused at build, with the reason."""


def plugin_id(name: str, taken: frozenset[str]) -> str:
    """The library's name, or `pto-<name>` when the lab already uses that id."""
    return f"pto-{name}" if name in taken else name


def _build(
    name: str,
    params: tuple[Param, ...],
    named_params: list[tuple[str, nn.Parameter]],
    roles: dict[str, Role],
    hyper: dict[str, Any],
) -> torch.optim.Optimizer:
    """The library's `name` over the parameters (split by role for Muon types), the lab's
    mixins applied. pytorch-optimizer is imported here, not when the catalogue is listed."""
    from descentlab.plugins.optimizers import pto_adapters

    kwargs = pto_schema.kwargs(params, pto_schema.converters(name), hyper)
    seed = kwargs.pop("seed", None)
    adapted = pto_adapters.adapted(
        pto_adapters.FIXED.get(name, pto_schema.library_classes()[name]),
        name in RANDOM,
        name in GRADIENTS_FIRST,
        name == "wsam",
        name == "splus",
    )
    tensors = [p for _, p in named_params]
    if name in MUON_TYPE:
        hidden, rest = split(named_params, roles)
        groups = [{"params": hidden, "use_muon": True}] if hidden else []
        groups += [{"params": rest, "use_muon": False}] if rest else []
        optimizer = adapted(groups, **kwargs)
    elif name in WRAPPERS:
        base = pto_schema.BASES[kwargs.pop("base")]
        if name == "wsam":
            optimizer = adapted(nn.Module(), tensors, base_optimizer=base, **kwargs)
        elif name in ("sam", "looksam", "friendlysam"):
            optimizer = adapted(tensors, base_optimizer=base, **kwargs)
        else:
            optimizer = adapted(base, params=tensors, **kwargs)
    else:
        optimizer = adapted(tensors, **kwargs)
    if seed is not None:
        optimizer._seed_random_state(seed)
    pto_adapters.keep_state_dtypes(optimizer)
    return optimizer


def _refuse(
    reason: str,
    named_params: list[tuple[str, nn.Parameter]],
    roles: dict[str, Role],
    hyper: dict[str, Any],
) -> torch.optim.Optimizer:
    raise ValueError(reason)


def _plugin(name: str, entry: LibraryEntry, taken: frozenset[str]) -> OptimizerPlugin:
    curated = _CURATED.get(name)
    pid = plugin_id(name, taken)
    params = entry.params
    if name in RANDOM:
        params += (Param("seed", "int", 0, pto_schema.HELP["seed"], low=0, high=2**31 - 1),)
    if curated is not None:
        title, family, summary = curated.title, curated.family, curated.summary
        reference = curated.reference
    else:
        title, family = entry.class_name, _FAMILY[name]
        summary = entry.summary
        reference = _REFERENCES.get(name) or entry.reference
    if pid.startswith("pto-") and "pytorch-optimizer" not in summary:
        summary = f"pytorch-optimizer's implementation. {summary}"
    exempt = dict(_EXEMPT.get(plugin_id(name, taken), {}))
    if name in UNRUNNABLE:
        reason = f"{pid} cannot run here: {UNRUNNABLE[name]}"
        build = functools.partial(_refuse, reason)
        exempt = dict.fromkeys(CONFORMANCE_CHECKS, UNRUNNABLE[name])
    else:
        build = functools.partial(_build, name, params)
    needs = Needs(
        closure=name in CLOSURE,
        create_graph=name in CREATE_GRAPH,
        roles=name in MUON_TYPE,
        train_eval=name in TRAIN_EVAL,
        batch=name == "wsam",
    )
    return OptimizerPlugin(
        id=pid,
        title=title,
        summary=summary,
        params=params,
        build=build,
        family=family,
        reference=reference,
        needs=needs,
        exempt=exempt,
    )


_EXEMPT: dict[str, dict[str, str]] = {
    "a2grad": {
        "live-lr": "A2Grad's step sizes come from lips and beta (its lr is unset by default), "
        "so group lr = 0 does not stop it."
    },
    "accsgd": {
        "live-lr": "AccSGD mixes θ with its long-step buffer (θ ← ζθ + (1 − ζ)w̄) at every "
        "step, which moves θ even when lr = 0."
    },
    "pto-adafactor": {
        "float64": "momentum_dtype (a torch.dtype, not exposed) keeps the first moment in "
        "bfloat16 whatever the parameters' dtype.",
        "live-lr": "With relative_step (the default) the step size is min(10⁻², 1/√t) from the "
        "step count, scaled by RMS(θ); group lr is not read.",
    },
    "adago": {
        "live-lr": "AdaGO's orthogonalised step has the floor eps (step size max(ε, ...)), so "
        "θ moves when lr = 0."
    },
    "adamod": {
        "decreases-logistic": "AdaMod caps each step by an EMA of past step sizes with "
        "β₃ = 0.9999 started at 0, so its first 50 steps are about 200 times smaller than "
        "Adam's and the loss barely moves.",
        "decreases-quadratic": "AdaMod caps each step by an EMA of past step sizes with "
        "β₃ = 0.9999 started at 0, so its first 50 steps are about 200 times smaller than "
        "Adam's and the loss barely moves.",
    },
    "adashift": {
        "state-dict": "Its state holds a collections.deque of past gradients, which "
        "torch.load(weights_only=True) refuses.",
        "live-lr": "AdaShift takes no step until its queue holds keep_num (10) gradients, so "
        "the check's step at the default lr after 3 steps does not move θ.",
    },
    "alig": {
        "live-lr": "AliG has no learning rate: its step is the Polyak step loss/‖g‖², capped "
        "by max_lr (unset by default)."
    },
    "apollodqn": {
        "live-lr": "During warm-up (warmup_steps = 500) its rate is "
        "init_lr + (lr − init_lr)·t/warmup_steps, which is not 0 when lr = 0."
    },
    "pto-asgd": {
        "live-lr": "This ASGD (Malitsky & Mishchenko) estimates the local smoothness by "
        "dividing by the previous step size; lr = 0 raises ZeroDivisionError."
    },
    "bsam": {
        "decreases-logistic": "At the library's defaults BSAM diverges on this problem "
        "(loss 1.16 → 3.41 in 50 steps), and also with lr = 0.1 or num_data = 10⁵.",
        "decreases-quadratic": "At the library's defaults BSAM diverges on the quadratic "
        "(loss 21.8 → 672 in 50 steps), and also with lr = 0.1.",
        "live-lr": "BSAM's noisy perturbation and precision update do not scale with lr, so θ "
        "moves when lr = 0.",
    },
    "conda": {
        "state-dict": "Its state holds GaLoreProjector objects, which "
        "torch.load(weights_only=True) refuses."
    },
    **{
        name: {
            "live-lr": "D-Adaptation folds d·lr into its momentum / dual-averaging sums, so a "
            "step at lr = 0 still applies what earlier steps accumulated."
        }
        for name in ("dadaptadagrad", "dadaptadam", "dadaptadan", "dadaptsgd")
    },
    "fadam": dict.fromkeys(
        ("float64", "state-dict", "live-lr"),
        "FAdam keeps momentum and Fisher in float32 (momentum_dtype, fim_dtype: dtypes, not "
        "exposed) and fails on float64 parameters (RuntimeError: expected dtype float).",
    ),
    "ftrl": {
        "live-lr": "FTRL-Proximal sets θ in closed form from its accumulators, "
        "θ = −(z − λ₁·sign z)/((β + √n)/η + λ₂), so lr = 0 sends θ to 0 instead of freezing it."
    },
    "gravity": {
        "decreases-quadratic": "Gravity starts from a random velocity of standard deviation "
        "α/η (alpha), which dominates its first 50 steps on the quadratic (with alpha = 0 the "
        "loss decreases)."
    },
    "kate": {
        "decreases-quadratic": "At the lab's lr of 10⁻⁴ (the library's 10⁻³ diverges on the "
        "logistic regression) the quadratic's loss falls by less than 0.1% in 50 steps."
    },
    "kron": dict.fromkeys(
        ("state-dict", "live-lr"),
        "Kron keeps its preconditioner factors in lists in float32 (precondition_dtype, a "
        "dtype, not exposed); load_state_dict casts them to the float64 parameters' dtype and "
        "the next step fails (expected scalar type Double but found Float).",
    ),
    "scalableshampoo": {
        "state-dict": "Its state holds PreConditioner and SGDGraft objects, which "
        "torch.load(weights_only=True) refuses."
    },
    "pto-lbfgs": {
        "live-lr": "With max_iter = 20 iterations per step, three steps converge the small "
        "logistic regression to tolerance, so the next step at the default lr does not move θ."
    },
    "laprop": {
        "live-lr": "LaProp accumulates lr·g/√v in its momentum, so a step at lr = 0 still "
        "applies the earlier momentum."
    },
    "madgrad": {
        "live-lr": "MADGRAD moves θ toward its dual-averaged point z = θ₀ − s/∛v with momentum; "
        "lr = 0 stops s from growing but not θ from moving toward z."
    },
    "nero": {
        "live-lr": "Nero re-projects each neuron onto zero mean and unit norm after every step "
        "(constraints), so θ moves with lr = 0."
    },
    "pto-radam": {
        "live-lr": "With degenerated_to_sgd = False RAdam takes no step while ρ_t ≤ 5 (its "
        "first steps), so the check's step at the default lr does not move θ."
    },
    "ranger": {
        "decreases-quadratic": "At the library's defaults (lr 10⁻³, β₁ = 0.95, Lookahead k = 6, "
        "α = 0.5) its loss on the quadratic rises in 50 steps (21.81 → 22.26), with or without "
        "gradient centralisation."
    },
    "sara": dict.fromkeys(
        ("decreases-logistic", "decreases-quadratic", "live-lr"),
        "SaRA trains only weights whose initial magnitude is below threshold (10⁻³), for "
        "fine-tuning; at these initialisations none is, so θ does not move.",
    ),
    **{
        name: {
            "live-lr": "The averaging weight uses the largest lr seen so far, so x keeps moving "
            "toward z, and the trained point y with it, when lr = 0."
        }
        for name in ("schedulefreeadamw", "schedulefreesgd", "schedulefreewrapper")
    },
    "schedulefreeradam": {
        "live-lr": "In its silent SGD phase (ρ_t ≤ 4, the first steps) it takes no step, so the "
        "check's step at the default lr does not move θ."
    },
    "trac": {
        "live-lr": "TRAC sets θ = θ₀ + S·Δ with a scale S it keeps learning, so θ moves when "
        "the base optimizer's lr is 0."
    },
}
"""Conformance checks an optimizer cannot meet, with the reason (filled after the sweep)."""


_TAKEN = frozenset(p.id for p in torch_optim.PLUGINS) | RESERVED_IDS
LIBRARY_VERSION, _ENTRIES = pto_schema.load_manifest()
"""The pytorch-optimizer release the manifest was read from, and its optimizers."""
PLUGINS: list[OptimizerPlugin] = [
    _plugin(name, entry, _TAKEN) for name, entry in sorted(_ENTRIES.items())
]
"""One plugin per pytorch-optimizer optimizer and wrapper (ids clash → `pto-<name>`)."""
