"""One record per pytorch-optimizer optimizer: everything the lab says about it.

This file is long on purpose (about 1,500 lines): it is data, one `Record` per optimizer of a
library of 137, sorted by library name so that an optimizer is found by searching for its name.
Splitting it by family would only move the search. What the signature says (the parameters and
their library defaults) is not here: `pto_schema.py` reads it into `pto_manifest.json`; how the
lab builds an optimizer from its record is `pytorch_optimizer_lib.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from descentlab.engine.plugin import Needs


@dataclass(frozen=True)
class Record:
    """What the lab says about one library optimizer beyond its signature.

    `title`, `summary` and `reference` fall back to the class name and the first line and link
    of its docstring when empty. `needs` are what the loop must do for it (see `Needs`): the SAM
    family and AliG step through a closure, AdaHessian and Sophia-H take Hessian-vector products
    through `create_graph`, Muon types get their groups from roles (hidden matrices → Muon, the
    rest → AdamW), WSAM is handed the model through `set_batch`, schedule-free ones switch
    between train and eval.
    """

    name: str
    """The library's name (`get_supported_optimizers()`, or a wrapper exported apart)."""
    family: str
    title: str = ""
    summary: str = ""
    reference: str = ""
    needs: Needs = field(default_factory=Needs)
    random: bool = False
    """It draws from the global torch, NumPy and Python generators (probes, noise, masks): it
    gets a `seed` and owns its random state, so a state-dict round trip continues exactly."""
    gradients_first: bool = False
    """A closure optimizer that reads `.grad` at θ before its first closure call (SAM family)."""
    eval_after_first_step: bool = False
    """Its `eval()` reads state made by the first step (SPlus): before it, θ is the eval point."""
    unrunnable: str = ""
    """Why it cannot run in the lab; it is listed, and refused at build with this reason."""
    exempt: dict[str, str] = field(default_factory=dict)
    """Conformance checks it cannot meet, with the reason (filled after the sweep)."""
    defaults: dict[str, Any] = field(default_factory=dict)
    """Library defaults the lab changes on purpose, with the reason in a comment."""


RECORDS: tuple[Record, ...] = (
    Record(
        name="a2grad",
        family="adaptive",
        title="A2Grad",
        summary=(
            "Adaptive accelerated SGD: Nesterov-type acceleration with an adaptive step from "
            "running averages of squared gradient differences (uniform, incremental or "
            "exponential averaging)."
        ),
        reference=(
            "Deng, Cheng & Lan, Optimal Adaptive and Accelerated Stochastic Gradient Descent, "
            "arXiv:1810.00553, 2018."
        ),
        exempt={
            "live-lr": (
                "A2Grad's step sizes come from lips and beta (its lr is unset by default), so "
                "group lr = 0 does not stop it."
            ),
        },
    ),
    Record(
        name="accsgd",
        family="sgd",
        title="AccSGD",
        summary=(
            "Accelerated SGD of Jain et al.: a momentum method coupling a short gradient step "
            "with a long step scaled by κ and ξ, provably faster than heavy ball on least "
            "squares."
        ),
        reference=(
            "Kidambi, Netrapalli, Jain & Kakade, On the insufficiency of existing momentum "
            "schemes for stochastic optimization, ICLR 2018."
        ),
        exempt={
            "live-lr": (
                "AccSGD mixes θ with its long-step buffer (θ ← ζθ + (1 − ζ)w̄) at every step, "
                "which moves θ even when lr = 0."
            ),
        },
    ),
    Record(
        name="adabelief",
        family="adaptive",
        title="AdaBelief",
        summary=(
            "Adam with the belief in the gradient as denominator: m ← β₁m + (1 − β₁)g, s ← β₂s + "
            "(1 − β₂)(g − m)² + ε, θ ← θ − η·m̂/(√ŝ + ε); large steps where the gradient agrees "
            "with its prediction m."
        ),
        reference=(
            "Zhuang et al., AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed "
            "Gradients, NeurIPS 2020."
        ),
    ),
    Record(
        name="adabound",
        family="adaptive",
        title="AdaBound",
        summary=(
            "Adam whose per-coordinate step η/√v̂ is clipped to bounds that converge to final_lr "
            "(lower 0.1·(1 − 1/(γt + 1)), upper 0.1·(1 + 1/(γt))), moving smoothly from Adam to "
            "SGD; m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g²."
        ),
        reference=(
            "Luo, Xiong, Liu & Sun, Adaptive Gradient Methods with Dynamic Bound of Learning "
            "Rate, ICLR 2019."
        ),
    ),
    Record(
        name="adadelta",
        family="adaptive",
        reference="Zeiler, ADADELTA: An Adaptive Learning Rate Method, arXiv:1212.5701, 2012.",
    ),
    Record(
        name="adafactor",
        family="memory-efficient",
        title="Adafactor (pytorch-optimizer)",
        summary=(
            "pytorch-optimizer's Adafactor: factored second moments for matrices, optional first "
            "moment, relative step and update clipping."
        ),
        reference=(
            "Shazeer & Stern, Adafactor: Adaptive Learning Rates with Sublinear Memory Cost, "
            "ICML 2018."
        ),
        exempt={
            "float64": (
                "momentum_dtype (a torch.dtype, not exposed) keeps the first moment in bfloat16 "
                "whatever the parameters' dtype."
            ),
            "live-lr": (
                "With relative_step (the default) the step size is min(10⁻², 1/√t) from the step "
                "count, scaled by RMS(θ); group lr is not read."
            ),
        },
    ),
    Record(
        name="adagc",
        family="adaptive",
    ),
    Record(
        name="adago",
        family="orthogonal",
        needs=Needs(roles=True),
        exempt={
            "live-lr": (
                "AdaGO's orthogonalised step has the floor eps (step size max(ε, ...)), so θ "
                "moves when lr = 0."
            ),
        },
    ),
    Record(
        name="adahessian",
        family="second-order",
        title="AdaHessian",
        summary=(
            "Adam with the Hessian diagonal in place of g²: D ≈ z ⊙ (Hz) from Hutchinson probes "
            "z (spatially averaged), v ← β₂v + (1 − β₂)D², θ ← θ − η·m̂/(√v̂)^k. Needs the graph "
            "of the backward pass for the Hessian-vector products."
        ),
        reference=(
            "Yao et al., ADAHESSIAN: An Adaptive Second Order Optimizer for Machine Learning, "
            "AAAI 2021."
        ),
        needs=Needs(create_graph=True),
        random=True,
    ),
    Record(
        name="adai",
        family="adaptive",
        reference=(
            "Xie, Wang, Zhang, Sato & Sugiyama, Adaptive Inertia: Disentangling the Effects of "
            "Adaptive Learning Rate and Momentum, ICML 2022."
        ),
    ),
    Record(
        name="adalite",
        family="memory-efficient",
    ),
    Record(
        name="adalomo",
        family="memory-efficient",
        reference=(
            "Lv et al., AdaLomo: Low-memory Optimization with Adaptive Learning Rate, ACL "
            "Findings 2024."
        ),
        unrunnable=(
            "AdaLOMO fuses the update into the backward pass: it takes the model and computes "
            "gradients itself in fused_backward(loss, lr), so it cannot step on the gradients "
            "the lab's loop computes."
        ),
    ),
    Record(
        name="adam",
        family="adaptive",
    ),
    Record(
        name="adamax",
        family="adaptive",
        reference="Kingma & Ba, Adam: A Method for Stochastic Optimization, ICLR 2015.",
    ),
    Record(
        name="adamc",
        family="adaptive",
    ),
    Record(
        name="adamg",
        family="lr-free",
        reference=(
            "Pan et al., Towards Stability of Parameter-free Optimization, arXiv:2405.04376, 2024."
        ),
    ),
    Record(
        name="adammini",
        family="memory-efficient",
        reference="Zhang et al., Adam-mini: Use Fewer Learning Rates To Gain More, ICLR 2025.",
        unrunnable=(
            "Adam-mini partitions parameters by the names of a transformer's modules "
            "(embeddings, heads, attention blocks given num_embeds/num_heads) from the model "
            "itself, which the lab's optimizer factory does not receive."
        ),
    ),
    Record(
        name="adamod",
        family="adaptive",
        reference=(
            "Ding, Ren, Luo & Sun, An Adaptive and Momental Bound Method for Stochastic "
            "Learning, arXiv:1910.12249, 2019."
        ),
        exempt={
            "decreases-logistic": (
                "AdaMod caps each step by an EMA of past step sizes with β₃ = 0.9999 started at "
                "0, so its first 50 steps are about 200 times smaller than Adam's and the loss "
                "barely moves."
            ),
            "decreases-quadratic": (
                "AdaMod caps each step by an EMA of past step sizes with β₃ = 0.9999 started at "
                "0, so its first 50 steps are about 200 times smaller than Adam's and the loss "
                "barely moves."
            ),
        },
    ),
    Record(
        name="adamp",
        family="adaptive",
        title="AdamP",
        summary=(
            "Adam whose step, for scale-invariant weights, is projected onto the tangent space "
            "so that their norm does not grow."
        ),
        reference=(
            "Heo et al., AdamP: Slowing Down the Slowdown for Momentum Optimizers on "
            "Scale-invariant Weights, ICLR 2021."
        ),
    ),
    Record(
        name="adams",
        family="adaptive",
        reference=(
            "Xie, Sato & Sugiyama, On the Overlooked Pitfalls of Weight Decay and How to "
            "Mitigate Them, NeurIPS 2023."
        ),
    ),
    Record(
        name="adamuon",
        family="orthogonal",
        title="AdaMuon",
        summary=(
            "Muon with an Adam-like element-wise second moment of the orthogonalised update and "
            "an RMS-matched scale; non-hidden parameters use AdamW."
        ),
        reference="Si et al., AdaMuon: Adaptive Muon Optimizer, arXiv:2507.11005, 2025.",
        needs=Needs(roles=True),
    ),
    Record(
        name="adamw",
        family="adaptive",
    ),
    Record(
        name="adamwsn",
        family="memory-efficient",
    ),
    Record(
        name="adan",
        family="adaptive",
        title="Adan",
        summary=(
            "Adaptive Nesterov momentum: averages of g, of the gradient difference g_t − g_{t−1} "
            "and of the square of g + β₂(g_t − g_{t−1}); the step combines the first two over "
            "the root of the third."
        ),
        reference=(
            "Xie, Zhou, Li, Lin & Yan, Adan: Adaptive Nesterov Momentum Algorithm for Faster "
            "Optimizing Deep Models, IEEE TPAMI 2024."
        ),
    ),
    Record(
        name="adanorm",
        family="adaptive",
        reference=(
            "Dubey et al., AdaNorm: Adaptive Gradient Norm Correction based Optimizer for CNNs, "
            "WACV 2023."
        ),
    ),
    Record(
        name="adapnm",
        family="adaptive",
        reference="Xie, Yuan, Zhu & Sugiyama, Positive-Negative Momentum, ICML 2021.",
    ),
    Record(
        name="adashift",
        family="adaptive",
        reference=(
            "Zhou et al., AdaShift: Decorrelation and Convergence of Adaptive Learning Rate "
            "Methods, ICLR 2019."
        ),
        exempt={
            "state-dict": (
                "Its state holds a collections.deque of past gradients, which "
                "torch.load(weights_only=True) refuses."
            ),
            "live-lr": (
                "AdaShift takes no step until its queue holds keep_num (10) gradients, so the "
                "check's step at the default lr after 3 steps does not move θ."
            ),
        },
    ),
    Record(
        name="adasmooth",
        family="adaptive",
    ),
    Record(
        name="adatam",
        family="adaptive",
    ),
    Record(
        name="ademamix",
        family="adaptive",
        title="AdEMAMix",
        summary=(
            "Adam with a second, slow momentum m₂ (β₃ ≈ 0.9999): θ ← θ − η·(m̂₁ + α·m₂)/(√v̂ + "
            "ε), so gradients thousands of steps old still contribute."
        ),
        reference=(
            "Pagliardini, Ablin & Grangier, The AdEMAMix Optimizer: Better, Faster, Older, ICLR "
            "2025."
        ),
    ),
    Record(
        name="adopt",
        family="adaptive",
        title="ADOPT",
        summary=(
            "Adam with the current gradient left out of its own denominator: g is normalised by "
            "the previous v, clipped, then averaged into m, θ ← θ − η·m; converges for any β₂."
        ),
        reference=(
            "Taniguchi et al., ADOPT: Modified Adam Can Converge with Any β₂ with the Optimal "
            "Rate, NeurIPS 2024."
        ),
    ),
    Record(
        name="aggmo",
        family="sgd",
        title="AggMo",
        summary=(
            "Aggregated momentum: several velocities v_i ← β_i·v_i − g with different β_i, θ ← θ "
            "+ η·mean(v_i); the large β's accelerate, the small ones damp oscillations."
        ),
        reference=(
            "Lucas, Sun, Zemel & Grosse, Aggregated Momentum: Stability Through Passive Damping, "
            "ICLR 2019."
        ),
    ),
    Record(
        name="aida",
        family="adaptive",
    ),
    Record(
        name="alice",
        family="memory-efficient",
    ),
    Record(
        name="alig",
        family="lr-free",
        title="AliG",
        summary=(
            "Adaptive learning-rate for interpolation: a Polyak step η_t = min(max_lr, "
            "loss/(‖g‖² + δ)) assuming the optimal loss is 0, with optional momentum. It has no "
            "learning rate in its groups: max_lr caps the step (unset: no cap)."
        ),
        reference=(
            "Berrada, Zisserman & Kumar, Training Neural Networks for and by Interpolation, ICML "
            "2020."
        ),
        needs=Needs(closure=True),
        exempt={
            "live-lr": (
                "AliG has no learning rate: its step is the Polyak step loss/‖g‖², capped by "
                "max_lr (unset by default)."
            ),
        },
    ),
    Record(
        name="amos",
        family="adaptive",
        title="Amos",
        summary=(
            "Adam-like step scaled by a model-oriented target scale, with adaptive decoupled "
            "weight decay that pulls each tensor toward that scale and a decaying effective step."
        ),
        reference=(
            "Tian & Parikh, Amos: An Adam-style Optimizer with Adaptive Weight Decay towards "
            "Model-Oriented Scale, arXiv:2210.11693, 2022."
        ),
    ),
    Record(
        name="ano",
        family="sign",
    ),
    Record(
        name="apollo",
        family="memory-efficient",
        title="APOLLO",
        summary=(
            "AdamW in a random low-rank projection of the gradient, used only to estimate a "
            "channel- or tensor-wise scaling of the raw gradient: SGD-like memory, AdamW-like "
            "steps."
        ),
        reference="Zhu et al., APOLLO: SGD-like Memory, AdamW-level Performance, MLSys 2025.",
    ),
    Record(
        name="apollodqn",
        family="second-order",
        reference=(
            "Ma, Apollo: An Adaptive Parameter-wise Diagonal Quasi-Newton Method for Nonconvex "
            "Stochastic Optimization, arXiv:2009.13586, 2020."
        ),
        exempt={
            "live-lr": (
                "During warm-up (warmup_steps = 500) its rate is init_lr + (lr − "
                "init_lr)·t/warmup_steps, which is not 0 when lr = 0."
            ),
        },
    ),
    Record(
        name="asgd",
        family="lr-free",
        reference=("Malitsky & Mishchenko, Adaptive Gradient Descent without Descent, ICML 2020."),
        exempt={
            "live-lr": (
                "This ASGD (Malitsky & Mishchenko) estimates the local smoothness by dividing by "
                "the previous step size; lr = 0 raises ZeroDivisionError."
            ),
        },
    ),
    Record(
        name="avagrad",
        family="adaptive",
        reference=(
            "Savarese, McAllester, Babu & Maire, Domain-independent Dominance of Adaptive "
            "Methods, CVPR 2021."
        ),
    ),
    Record(
        name="bcos",
        family="adaptive",
    ),
    Record(
        name="bsam",
        family="sharpness-aware",
        title="BSAM",
        summary=(
            "Bayesian SAM: a variational (Adam-like) posterior; each step perturbs θ with noise "
            "of variance 1/(N·s), takes a SAM ascent there and updates mean and precision s."
        ),
        reference="Möllenhoff & Khan, SAM as an Optimal Relaxation of Bayes, ICLR 2023.",
        needs=Needs(closure=True),
        random=True,
        gradients_first=True,
        exempt={
            "decreases-logistic": (
                "At the library's defaults BSAM diverges on this problem (loss 1.16 → 3.41 in 50 "
                "steps), and also with lr = 0.1 or num_data = 10⁵."
            ),
            "decreases-quadratic": (
                "At the library's defaults BSAM diverges on the quadratic (loss 21.8 → 672 in 50 "
                "steps), and also with lr = 0.1."
            ),
            "live-lr": (
                "BSAM's noisy perturbation and precision update do not scale with lr, so θ moves "
                "when lr = 0."
            ),
        },
    ),
    Record(
        name="came",
        family="memory-efficient",
        title="CAME",
        summary=(
            "Adafactor's factored second moment plus a factored confidence term, the variance of "
            "the update around its momentum, that scales the step down where updates are "
            "unstable."
        ),
        reference=(
            "Luo et al., CAME: Confidence-guided Adaptive Memory Efficient Optimization, ACL 2023."
        ),
    ),
    Record(
        name="conda",
        family="adaptive",
        exempt={
            "state-dict": (
                "Its state holds GaLoreProjector objects, which torch.load(weights_only=True) "
                "refuses."
            ),
        },
    ),
    Record(
        name="dadaptadagrad",
        family="lr-free",
        title="D-Adapt AdaGrad",
        summary=(
            "AdaGrad whose step is scaled by an estimate d of the distance to the solution, "
            "grown from d₀ by a lower bound built from past gradients: no learning rate to tune "
            "(lr multiplies d, 1 by default)."
        ),
        reference=("Defazio & Mishchenko, Learning-Rate-Free Learning by D-Adaptation, ICML 2023."),
        exempt={
            "live-lr": (
                "D-Adaptation folds d·lr into its momentum / dual-averaging sums, so a step at "
                "lr = 0 still applies what earlier steps accumulated."
            ),
        },
    ),
    Record(
        name="dadaptadam",
        family="lr-free",
        title="D-Adapt Adam",
        summary=(
            "Adam scaled by the D-Adaptation distance estimate d (grown from d₀): the learning "
            "rate is learned, lr is a multiplier of it (1 by default)."
        ),
        reference=("Defazio & Mishchenko, Learning-Rate-Free Learning by D-Adaptation, ICML 2023."),
        exempt={
            "live-lr": (
                "D-Adaptation folds d·lr into its momentum / dual-averaging sums, so a step at "
                "lr = 0 still applies what earlier steps accumulated."
            ),
        },
    ),
    Record(
        name="dadaptadan",
        family="lr-free",
        title="D-Adapt Adan",
        summary=("Adan scaled by the D-Adaptation distance estimate d; lr is a multiplier of d."),
        reference=("Defazio & Mishchenko, Learning-Rate-Free Learning by D-Adaptation, ICML 2023."),
        exempt={
            "live-lr": (
                "D-Adaptation folds d·lr into its momentum / dual-averaging sums, so a step at "
                "lr = 0 still applies what earlier steps accumulated."
            ),
        },
    ),
    Record(
        name="dadaptlion",
        family="lr-free",
        title="D-Adapt Lion",
        summary=(
            "Lion's sign update scaled by the D-Adaptation distance estimate d; lr multiplies d."
        ),
        reference=("Defazio & Mishchenko, Learning-Rate-Free Learning by D-Adaptation, ICML 2023."),
    ),
    Record(
        name="dadaptsgd",
        family="lr-free",
        title="D-Adapt SGD",
        summary=(
            "SGD with momentum scaled by the D-Adaptation distance estimate d; lr multiplies d."
        ),
        reference=("Defazio & Mishchenko, Learning-Rate-Free Learning by D-Adaptation, ICML 2023."),
        exempt={
            "live-lr": (
                "D-Adaptation folds d·lr into its momentum / dual-averaging sums, so a step at "
                "lr = 0 still applies what earlier steps accumulated."
            ),
        },
    ),
    Record(
        name="dash",
        family="second-order",
    ),
    Record(
        name="demo",
        family="sgd",
        unrunnable=(
            "DeMo exchanges compressed momenta over a torch.distributed process group, which the "
            "lab's single-process loop does not initialise."
        ),
    ),
    Record(
        name="diffgrad",
        family="adaptive",
        title="diffGrad (pytorch-optimizer)",
        summary=(
            "pytorch-optimizer's diffGrad: Adam with the momentum damped by the friction ξ = "
            "sigmoid(|g_{t−1} − g_t|), so steps slow down where the gradient barely changes."
        ),
        reference=(
            "Dubey et al., diffGrad: An Optimization Method for Convolutional Neural Networks, "
            "IEEE TNNLS 2020."
        ),
    ),
    Record(
        name="distributedmuon",
        family="orthogonal",
        unrunnable=(
            "DistributedMuon shards its work over a torch.distributed process group, which the "
            "lab's single-process loop does not initialise; use pto-muon."
        ),
    ),
    Record(
        name="dualadam",
        family="adaptive",
    ),
    Record(
        name="emofact",
        family="memory-efficient",
    ),
    Record(
        name="emolynx",
        family="sign",
    ),
    Record(
        name="emonavi",
        family="adaptive",
    ),
    Record(
        name="exadam",
        family="adaptive",
    ),
    Record(
        name="fadam",
        family="adaptive",
        reference=(
            "Hwang, FAdam: Adam is a natural gradient optimizer using diagonal empirical Fisher "
            "information, arXiv:2405.12807, 2024."
        ),
        exempt={
            "float64": (
                "FAdam keeps momentum and Fisher in float32 (momentum_dtype, fim_dtype: dtypes, "
                "not exposed) and fails on float64 parameters (RuntimeError: expected dtype "
                "float)."
            ),
            "state-dict": (
                "FAdam keeps momentum and Fisher in float32 (momentum_dtype, fim_dtype: dtypes, "
                "not exposed) and fails on float64 parameters (RuntimeError: expected dtype "
                "float)."
            ),
            "live-lr": (
                "FAdam keeps momentum and Fisher in float32 (momentum_dtype, fim_dtype: dtypes, "
                "not exposed) and fails on float64 parameters (RuntimeError: expected dtype "
                "float)."
            ),
        },
    ),
    Record(
        name="fira",
        family="memory-efficient",
        reference=(
            "Chen et al., Fira: Can We Achieve Full-rank Training of LLMs Under Low-rank "
            "Constraint?, arXiv:2410.01623, 2024."
        ),
    ),
    Record(
        name="flashadamw",
        family="memory-efficient",
    ),
    Record(
        name="focus",
        family="sign",
    ),
    Record(
        name="friendlysam",
        family="sharpness-aware",
        title="Friendly SAM",
        summary=(
            "SAM whose perturbation removes the full-batch gradient component (estimated by an "
            "EMA with λ), ascending along the batch-specific noise only."
        ),
        reference="Li et al., Friendly Sharpness-Aware Minimization, CVPR 2024.",
        needs=Needs(closure=True),
        gradients_first=True,
    ),
    Record(
        name="fromage",
        family="other",
        title="Fromage",
        summary=(
            "Frobenius-matched gradient descent: each tensor steps by a fixed fraction η of its "
            "norm, θ ← (θ − η·‖θ‖/‖g‖·g)/√(1 + η²), a step controlled in relative terms."
        ),
        reference=(
            "Bernstein, Vahdat, Yue & Liu, On the distance between two neural networks and the "
            "stability of learning, NeurIPS 2020."
        ),
    ),
    Record(
        name="ftrl",
        family="adaptive",
        reference="McMahan et al., Ad Click Prediction: a View from the Trenches, KDD 2013.",
        exempt={
            "live-lr": (
                "FTRL-Proximal sets θ in closed form from its accumulators, θ = −(z − λ₁·sign "
                "z)/((β + √n)/η + λ₂), so lr = 0 sends θ to 0 instead of freezing it."
            ),
        },
    ),
    Record(
        name="galore",
        family="memory-efficient",
        title="GaLore",
        summary=(
            "AdamW in a low-rank gradient subspace: the gradient of a matrix is projected on its "
            "top singular vectors (refreshed periodically), Adam runs there, and the step is "
            "projected back; parameters without a rank group step as AdamW."
        ),
        reference=(
            "Zhao et al., GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection, "
            "ICML 2024."
        ),
    ),
    Record(
        name="grams",
        family="adaptive",
    ),
    Record(
        name="gravity",
        family="other",
        reference=(
            "Bahrami & Zadeh, Gravity Optimizer: a Kinematic Approach on Optimization in Deep "
            "Learning, arXiv:2101.09192, 2021."
        ),
        random=True,
        exempt={
            "decreases-quadratic": (
                "Gravity starts from a random velocity of standard deviation α/η (alpha), which "
                "dominates its first 50 steps on the quadratic (with alpha = 0 the loss "
                "decreases)."
            ),
        },
    ),
    Record(
        name="grokfastadamw",
        family="adaptive",
        reference=(
            "Lee, Kang, Lee & Kim, Grokfast: Accelerated Grokking by Amplifying Slow Gradients, "
            "arXiv:2405.20233, 2024."
        ),
    ),
    Record(
        name="gsam",
        family="sharpness-aware",
        reference=(
            "Zhuang et al., Surrogate Gap Minimization Improves Sharpness-Aware Training, ICLR "
            "2022."
        ),
        unrunnable=(
            "GSAM needs the model and an external rho scheduler at construction and its own "
            "(outputs, loss) closure set per batch; it does not fit step(closure)."
        ),
    ),
    Record(
        name="kate",
        family="adaptive",
        title="KATE",
        summary=(
            "Scale-invariant AdaGrad without the square root: b² ← b² + g², m ← m + g²/b² + "
            "δ·..., θ ← θ − η·√m·g/b², invariant to rescaling the data in generalised linear "
            "models."
        ),
        reference=(
            "Choudhury et al., Remove that Square Root: A New Efficient Scale-Invariant Version "
            "of AdaGrad, NeurIPS 2024."
        ),
        exempt={
            "decreases-quadratic": (
                "At the lab's lr of 10⁻⁴ (the library's 10⁻³ diverges on the logistic "
                "regression) the quadratic's loss falls by less than 0.1% in 50 steps."
            ),
        },
        # The library's 1e-3 diverges on the lab's logistic regression: KATE's step η·√m·g/b²
        # is scale-invariant, so it does not shrink with the gradient.
        defaults={"lr": 1e-4},
    ),
    Record(
        name="kron",
        family="second-order",
        title="Kron (PSGD)",
        summary=(
            "Preconditioned SGD with a Kronecker-factored preconditioner P = QᵀQ fitted online "
            "so that P·(Hv) matches v on random probes (Lie-group updates of the triangular "
            "factors), applied to the momentum; updated with a probability that decays over "
            "training."
        ),
        reference=(
            "Li, Preconditioned Stochastic Gradient Descent, IEEE TNNLS 2018; Kron variant by "
            "Evan Walters et al. (psgd_torch)."
        ),
        random=True,
        exempt={
            "state-dict": (
                "Kron keeps its preconditioner factors in lists in float32 (precondition_dtype, "
                "a dtype, not exposed); load_state_dict casts them to the float64 parameters' "
                "dtype and the next step fails (expected scalar type Double but found Float)."
            ),
            "live-lr": (
                "Kron keeps its preconditioner factors in lists in float32 (precondition_dtype, "
                "a dtype, not exposed); load_state_dict casts them to the float64 parameters' "
                "dtype and the next step fails (expected scalar type Double but found Float)."
            ),
        },
    ),
    Record(
        name="lamb",
        family="adaptive",
        title="LAMB",
        summary=(
            "Layer-wise adaptive Adam: the Adam update u of each tensor (with decoupled decay) "
            "is rescaled by the trust ratio ‖θ‖/‖u‖, θ ← θ − η·(‖θ‖/‖u‖)·u, for large-batch "
            "training."
        ),
        reference=(
            "You et al., Large Batch Optimization for Deep Learning: Training BERT in 76 "
            "minutes, ICLR 2020."
        ),
    ),
    Record(
        name="laprop",
        family="adaptive",
        title="LaProp",
        summary=(
            "Adam with momentum applied after the adaptive scaling: m ← β₁m + (1 − β₁)·g/√v̂, θ "
            "← θ − η·m̂, which decouples momentum from adaptivity."
        ),
        reference=(
            "Ziyin, Wang & Ueda, LaProp: Separating Momentum and Adaptivity in Adam, "
            "arXiv:2002.04839, 2020."
        ),
        exempt={
            "live-lr": (
                "LaProp accumulates lr·g/√v in its momentum, so a step at lr = 0 still applies "
                "the earlier momentum."
            ),
        },
    ),
    Record(
        name="lars",
        family="sgd",
        title="LARS",
        summary=(
            "Layer-wise adaptive rate scaling: SGD with momentum where each tensor's step is "
            "scaled by the trust ratio c·‖θ‖/(‖g‖ + λ‖θ‖)."
        ),
        reference=(
            "You, Gitman & Ginsburg, Large Batch Training of Convolutional Networks, "
            "arXiv:1708.03888, 2017."
        ),
    ),
    Record(
        name="lbfgs",
        family="second-order",
        needs=Needs(closure=True),
        exempt={
            "live-lr": (
                "With max_iter = 20 iterations per step, three steps converge the small logistic "
                "regression to tolerance, so the next step at the default lr does not move θ."
            ),
        },
    ),
    Record(
        name="lion",
        family="sign",
        title="Lion",
        summary=(
            "Evolved sign momentum: θ ← θ − η·sign(β₁m + (1 − β₁)g), then m ← β₂m + (1 − β₂)g; "
            "every coordinate moves by exactly η."
        ),
        reference="Chen et al., Symbolic Discovery of Optimization Algorithms, NeurIPS 2023.",
    ),
    Record(
        name="lomo",
        family="sgd",
        reference=(
            "Lv et al., Full Parameter Fine-tuning for Large Language Models with Limited "
            "Resources, ACL 2024."
        ),
        unrunnable=(
            "LOMO fuses the update into the backward pass: it takes the model and computes "
            "gradients itself in fused_backward(loss, lr), so it cannot step on the gradients "
            "the lab's loop computes."
        ),
    ),
    Record(
        name="lookahead",
        family="wrapper",
        title="Lookahead (pytorch-optimizer)",
        summary=(
            "pytorch-optimizer's Lookahead: the base optimizer takes k fast steps, then the slow "
            "weights move φ ← φ + α(θ − φ) and θ is reset to φ."
        ),
        reference=(
            "Zhang, Lucas, Hinton & Ba, Lookahead Optimizer: k steps forward, 1 step back, "
            "NeurIPS 2019."
        ),
    ),
    Record(
        name="looksam",
        family="sharpness-aware",
        title="LookSAM",
        summary=(
            "SAM that computes the ascent gradient only every k steps and reuses its component "
            "orthogonal to g (scaled by α) in between, at almost SGD's cost."
        ),
        reference=(
            "Liu et al., Towards Efficient and Scalable Sharpness-Aware Minimization, CVPR 2022."
        ),
        needs=Needs(closure=True),
        gradients_first=True,
    ),
    Record(
        name="lorarite",
        family="memory-efficient",
        unrunnable=(
            "LoRA-RITE optimizes LoRA factor pairs (A, B) laid out as consecutive parameters of "
            "LoRA adapters; the lab's tasks have no LoRA-structured parameters."
        ),
    ),
    Record(
        name="madgrad",
        family="adaptive",
        title="MADGRAD",
        summary=(
            "Momentumised dual averaging: sums of λ_t·g and λ_t·g² define a dual-averaged point "
            "z = θ₀ − s/∛v, and θ moves toward z with momentum."
        ),
        reference=(
            "Defazio & Jelassi, A Momentumized, Adaptive, Dual Averaged Gradient Method, JMLR "
            "23, 2022."
        ),
        exempt={
            "live-lr": (
                "MADGRAD moves θ toward its dual-averaged point z = θ₀ − s/∛v with momentum; lr "
                "= 0 stops s from growing but not θ from moving toward z."
            ),
        },
    ),
    Record(
        name="magma",
        family="wrapper",
        unrunnable=(
            "Magma needs an optimizer instance whose state it masks, and the exclusion set of "
            "parameter tensors; as a wrapper of torch's AdamW its masking draws random numbers "
            "inside the inner optimizer, which the lab cannot own. Not supported here."
        ),
    ),
    Record(
        name="mars",
        family="adaptive",
        title="MARS",
        summary=(
            "Variance-reduced AdamW: the gradient is corrected by γ·β₁/(1 − β₁)·(g_t − g_{t−1}) "
            "(STORM-style), clipped, then fed to AdamW (or Lion / Shampoo by mars_type)."
        ),
        reference=(
            "Yuan, Liu, Wu, Zhou & Gu, MARS: Unleashing the Power of Variance Reduction for "
            "Training Large Models, ICML 2025."
        ),
    ),
    Record(
        name="msvag",
        family="sgd",
        reference=(
            "Balles & Hennig, Dissecting Adam: The Sign, Magnitude and Variance of Stochastic "
            "Gradients, ICML 2018."
        ),
    ),
    Record(
        name="muon",
        family="orthogonal",
        title="Muon (pytorch-optimizer)",
        summary=(
            "pytorch-optimizer's Muon: B ← μB + g, the (Nesterov) momentum of each hidden matrix "
            "is orthogonalised by Newton–Schulz iterations and W ← W − η·NS(B); parameters that "
            "are not hidden matrices step with the built-in AdamW (adamw_* settings)."
        ),
        reference=(
            "Jordan et al., Muon: An optimizer for hidden layers in neural networks, 2024, "
            "https://kellerjordan.github.io/posts/muon/."
        ),
        needs=Needs(roles=True),
    ),
    Record(
        name="muonclip",
        family="orthogonal",
        needs=Needs(roles=True),
    ),
    Record(
        name="nadam",
        family="adaptive",
    ),
    Record(
        name="nero",
        family="other",
        title="Nero",
        summary=(
            "Neuronal rotator: per-neuron Adam-like normalised steps, with each neuron's weight "
            "vector constrained to zero mean and unit norm (constraints), i.e. rotated on a "
            "sphere."
        ),
        reference=(
            "Liu, Bernstein, Meister & Yue, Learning by Turning: Neural Architecture Aware "
            "Optimisation, ICML 2021."
        ),
        exempt={
            "live-lr": (
                "Nero re-projects each neuron onto zero mean and unit norm after every step "
                "(constraints), so θ moves with lr = 0."
            ),
        },
    ),
    Record(
        name="normuon",
        family="orthogonal",
        title="NorMuon",
        summary=(
            "Muon followed by neuron-wise (row) normalisation of the orthogonalised update with "
            "a running second moment per row; non-hidden parameters use AdamW."
        ),
        reference=(
            "Li et al., NorMuon: Making Muon more efficient and scalable, arXiv:2510.05491, 2025."
        ),
        needs=Needs(roles=True),
    ),
    Record(
        name="novograd",
        family="adaptive",
        title="NovoGrad",
        summary=(
            "Adam with a layer-wise second moment: v ← β₂v + (1 − β₂)‖g‖² per tensor, m ← β₁m + "
            "g/√v + λθ, θ ← θ − η·m."
        ),
        reference=(
            "Ginsburg et al., Stochastic Gradient Methods with Layer-wise Adaptive Moments for "
            "Training of Deep Networks, arXiv:1905.11286, 2019."
        ),
    ),
    Record(
        name="orthograd",
        family="wrapper",
        title="OrthoGrad",
        summary=(
            "Removes the component of each gradient along its parameter, g ← g − (⟨g, θ⟩/‖θ‖²)θ "
            "(rescaled to the original norm), then steps the base optimizer: it prevents naive "
            "loss minimisation by weight growth (grokking studies)."
        ),
        reference=(
            "Prieto, Barsbey, Mediano & Birdal, Grokking at the Edge of Numerical Stability, "
            "ICLR 2025."
        ),
    ),
    Record(
        name="padam",
        family="adaptive",
        reference=(
            "Chen et al., Closing the Generalization Gap of Adaptive Gradient Methods in "
            "Training Deep Neural Networks, IJCAI 2020."
        ),
    ),
    Record(
        name="pid",
        family="sgd",
        title="PID",
        summary=(
            "SGD as a PID controller: momentum is the integral term, plus a derivative term on "
            "the gradient difference, θ ← θ − η·(g + I·v + D·(g_t − g_{t−1}))."
        ),
        reference=(
            "An et al., A PID Controller Approach for Stochastic Optimization of Deep Networks, "
            "CVPR 2018."
        ),
    ),
    Record(
        name="pnm",
        family="sgd",
        reference="Xie, Yuan, Zhu & Sugiyama, Positive-Negative Momentum, ICML 2021.",
    ),
    Record(
        name="prodigy",
        family="lr-free",
        title="Prodigy",
        summary=(
            "Adam scaled by a distance estimate d that grows faster than D-Adaptation's "
            "(weighted by d itself): the step size is learned; lr is a multiplier of d (1 by "
            "default)."
        ),
        reference=(
            "Mishchenko & Defazio, Prodigy: An Expeditiously Adaptive Parameter-Free Learner, "
            "ICML 2024."
        ),
    ),
    Record(
        name="qhadam",
        family="adaptive",
        title="QHAdam",
        summary=(
            "Quasi-hyperbolic Adam: numerator (1 − ν₁)g + ν₁m̂ and denominator √((1 − ν₂)g² + "
            "ν₂v̂) + ε mix the raw gradient with the averages."
        ),
        reference=("Ma & Yarats, Quasi-hyperbolic momentum and Adam for deep learning, ICLR 2019."),
    ),
    Record(
        name="qhm",
        family="sgd",
        title="QHM",
        summary="Quasi-hyperbolic momentum: θ ← θ − η·((1 − ν)g + ν·m), m ← βm + (1 − β)g.",
        reference=("Ma & Yarats, Quasi-hyperbolic momentum and Adam for deep learning, ICLR 2019."),
    ),
    Record(
        name="racs",
        family="memory-efficient",
        random=True,
    ),
    Record(
        name="radam",
        family="adaptive",
        exempt={
            "live-lr": (
                "With degenerated_to_sgd = False RAdam takes no step while ρ_t ≤ 5 (its first "
                "steps), so the check's step at the default lr does not move θ."
            ),
        },
    ),
    Record(
        name="ranger",
        family="adaptive",
        title="Ranger",
        summary=(
            "RAdam wrapped in Lookahead (slow weights pulled toward the fast ones every k steps "
            "by α) with gradient centralisation."
        ),
        reference=(
            "Wright, Ranger, 2019 (RAdam: Liu et al., ICLR 2020; Lookahead: Zhang et al., "
            "NeurIPS 2019)."
        ),
        exempt={
            "decreases-quadratic": (
                "At the library's defaults (lr 10⁻³, β₁ = 0.95, Lookahead k = 6, α = 0.5) its "
                "loss on the quadratic rises in 50 steps (21.81 → 22.26), with or without "
                "gradient centralisation."
            ),
        },
    ),
    Record(
        name="ranger21",
        family="adaptive",
        title="Ranger21",
        summary=(
            "AdamW with positive–negative momentum, adaptive gradient clipping, gradient "
            "centralisation and normalisation, Lookahead, norm loss, and its own warm-up / "
            "warm-down schedule over num_iterations steps."
        ),
        reference=(
            "Wright & Demeure, Ranger21: a synergistic deep learning optimizer, "
            "arXiv:2106.13731, 2021."
        ),
    ),
    Record(
        name="rmsprop",
        family="adaptive",
    ),
    Record(
        name="rose",
        family="adaptive",
    ),
    Record(
        name="sam",
        family="sharpness-aware",
        title="SAM",
        summary=(
            "Sharpness-aware minimisation: ascend to θ + ρ·g/‖g‖, take the gradient there, and "
            "step the base optimizer from θ with it, minimising the worst loss in a ρ-ball. "
            "adaptive scales the perturbation by |θ| (ASAM)."
        ),
        reference=(
            "Foret, Kleiner, Mobahi & Neyshabur, Sharpness-Aware Minimization for Efficiently "
            "Improving Generalization, ICLR 2021; ASAM: Kwon et al., ICML 2021."
        ),
        needs=Needs(closure=True),
        gradients_first=True,
    ),
    Record(
        name="sara",
        family="memory-efficient",
        exempt={
            "decreases-logistic": (
                "SaRA trains only weights whose initial magnitude is below threshold (10⁻³), for "
                "fine-tuning; at these initialisations none is, so θ does not move."
            ),
            "decreases-quadratic": (
                "SaRA trains only weights whose initial magnitude is below threshold (10⁻³), for "
                "fine-tuning; at these initialisations none is, so θ does not move."
            ),
            "live-lr": (
                "SaRA trains only weights whose initial magnitude is below threshold (10⁻³), for "
                "fine-tuning; at these initialisations none is, so θ does not move."
            ),
        },
    ),
    Record(
        name="scalableshampoo",
        family="second-order",
        title="Scalable Shampoo",
        summary=(
            "Distributed Shampoo: blockwise Kronecker preconditioners with inverse p-th roots by "
            "coupled Newton iteration, started after start_preconditioning_step, and the step "
            "size grafted from SGD / AdaGrad."
        ),
        reference=(
            "Anil et al., Scalable Second Order Optimization for Deep Learning, "
            "arXiv:2002.09018, 2020."
        ),
        exempt={
            "state-dict": (
                "Its state holds PreConditioner and SGDGraft objects, which "
                "torch.load(weights_only=True) refuses."
            ),
        },
    ),
    Record(
        name="schedulefreeadamw",
        family="schedule-free",
        title="Schedule-Free AdamW",
        summary=(
            "AdamW steps z ← z − η·ĝ/(√v̂ + ε) at a point y = (1 − β₁)z + β₁x, and the evaluated "
            "weights x are the running weighted average of z: no decay schedule needed. "
            "Gradients are taken at y (train), the loss is reported at x (eval)."
        ),
        reference="Defazio et al., The Road Less Scheduled, NeurIPS 2024.",
        needs=Needs(train_eval=True),
        exempt={
            "live-lr": (
                "The averaging weight uses the largest lr seen so far, so x keeps moving toward "
                "z, and the trained point y with it, when lr = 0."
            ),
        },
    ),
    Record(
        name="schedulefreeradam",
        family="schedule-free",
        title="Schedule-Free RAdam",
        summary=(
            "Schedule-free averaging (gradients at y, iterate average x) over RAdam's rectified "
            "steps, so that neither warm-up nor decay is needed."
        ),
        reference="Defazio et al., The Road Less Scheduled, NeurIPS 2024.",
        needs=Needs(train_eval=True),
        exempt={
            "live-lr": (
                "In its silent SGD phase (ρ_t ≤ 4, the first steps) it takes no step, so the "
                "check's step at the default lr does not move θ."
            ),
        },
    ),
    Record(
        name="schedulefreesgd",
        family="schedule-free",
        title="Schedule-Free SGD",
        summary=(
            "z ← z − η·g(y), y = (1 − β)z + βx, x ← running weighted average of z: SGD with "
            "momentum replaced by interpolation and averaging, no schedule needed."
        ),
        reference="Defazio et al., The Road Less Scheduled, NeurIPS 2024.",
        needs=Needs(train_eval=True),
        exempt={
            "live-lr": (
                "The averaging weight uses the largest lr seen so far, so x keeps moving toward "
                "z, and the trained point y with it, when lr = 0."
            ),
        },
    ),
    Record(
        name="schedulefreewrapper",
        family="schedule-free",
        title="Schedule-Free wrapper",
        summary=(
            "Schedule-free averaging over any base optimizer: the base steps z at the "
            "interpolation y and the evaluated weights x are the running weighted average."
        ),
        reference="Defazio et al., The Road Less Scheduled, NeurIPS 2024.",
        needs=Needs(train_eval=True),
        exempt={
            "live-lr": (
                "The averaging weight uses the largest lr seen so far, so x keeps moving toward "
                "z, and the trained point y with it, when lr = 0."
            ),
        },
    ),
    Record(
        name="scion",
        family="orthogonal",
        title="SCION",
        summary=(
            "Stochastic conditional gradient with norm constraints: each tensor steps along the "
            "linear-minimisation oracle of its norm (spectral for matrices → orthogonalised, "
            "sign, bias norms) applied to its momentum, θ ← θ − η·lmo(m)."
        ),
        reference=(
            "Pethick et al., Training Deep Learning Models with Norm-Constrained LMOs, ICML 2025."
        ),
        random=True,
    ),
    Record(
        name="scionlight",
        family="orthogonal",
        title="SCION (light)",
        summary=(
            "SCION with its momentum kept in the gradient buffers, saving one buffer per tensor."
        ),
        reference=(
            "Pethick et al., Training Deep Learning Models with Norm-Constrained LMOs, ICML 2025."
        ),
        random=True,
    ),
    Record(
        name="sgd",
        family="sgd",
    ),
    Record(
        name="sgdp",
        family="sgd",
        title="SGDP",
        summary=(
            "SGD with momentum whose step, for scale-invariant weights (detected by the cosine "
            "of θ and g), is projected onto the tangent space, stopping the norm growth that "
            "slows their effective learning rate."
        ),
        reference=(
            "Heo et al., AdamP: Slowing Down the Slowdown for Momentum Optimizers on "
            "Scale-invariant Weights, ICLR 2021."
        ),
    ),
    Record(
        name="sgdsai",
        family="sgd",
    ),
    Record(
        name="sgdw",
        family="sgd",
        reference="Loshchilov & Hutter, Decoupled Weight Decay Regularization, ICLR 2019.",
    ),
    Record(
        name="shampoo",
        family="second-order",
        title="Shampoo",
        summary=(
            "Kronecker-factored full-matrix AdaGrad: for a matrix G, L ← L + GGᵀ, R ← R + GᵀG, θ "
            "← θ − η·L^(−1/4)·G·R^(−1/4) (inverse roots recomputed every few steps)."
        ),
        reference=(
            "Gupta, Koren & Singer, Shampoo: Preconditioned Stochastic Tensor Optimization, ICML "
            "2018."
        ),
    ),
    Record(
        name="signsgd",
        family="sign",
        title="signSGD",
        summary="θ ← θ − η·sign(m) with m ← βm + (1 − β)g (signum; β = 0 is plain signSGD).",
        reference=(
            "Bernstein, Wang, Azizzadenesheli & Anandkumar, signSGD: Compressed Optimisation for "
            "Non-Convex Problems, ICML 2018."
        ),
    ),
    Record(
        name="simplifiedademamix",
        family="adaptive",
        reference=(
            "Morwani et al., Connections between Schedule-Free Optimizers, AdEMAMix, and "
            "Accelerated SGD Variants, arXiv:2502.02431, 2025."
        ),
    ),
    Record(
        name="sm3",
        family="memory-efficient",
        title="SM3",
        summary=(
            "AdaGrad with a cover of accumulators (one per row and per column of a matrix): each "
            "coordinate's sum of g² is bounded by the min over its covers, O(m + n) memory."
        ),
        reference=(
            "Anil, Gupta, Koren & Singer, Memory-Efficient Adaptive Optimization, NeurIPS 2019."
        ),
    ),
    Record(
        name="soap",
        family="second-order",
        title="SOAP",
        summary=(
            "Adam run in the eigenbasis of Shampoo's preconditioners (refreshed every "
            "precondition_frequency steps): rotate g, Adam step, rotate back."
        ),
        reference=("Vyas et al., SOAP: Improving and Stabilizing Shampoo using Adam, ICLR 2025."),
    ),
    Record(
        name="sophiah",
        family="second-order",
        title="Sophia-H",
        summary=(
            "Clipped diagonal Newton: h ← β₂h + (1 − β₂)·z ⊙ (Hz) every update_period steps "
            "(Hutchinson), θ ← θ − η·clip(m/max(p·h, ε), 1). Needs the graph of the backward "
            "pass."
        ),
        reference=(
            "Liu et al., Sophia: A Scalable Stochastic Second-order Optimizer for Language Model "
            "Pre-training, ICLR 2024."
        ),
        needs=Needs(create_graph=True),
        random=True,
    ),
    Record(
        name="spam",
        family="adaptive",
        reference=(
            "Huang et al., SPAM: Spike-Aware Adam with Momentum Reset for Stable LLM Training, "
            "ICLR 2025."
        ),
        random=True,
    ),
    Record(
        name="spectralsphere",
        family="orthogonal",
        unrunnable=(
            "SpectralSphere accepts only 2-D parameters (it raises ValueError on anything else), "
            "and every task in the lab has biases or vector parameters."
        ),
    ),
    Record(
        name="splus",
        family="second-order",
        reference=(
            "Frans, Levine & Abbeel, A Stable Whitening Optimizer for Efficient Neural Network "
            "Training, arXiv:2506.07254, 2025."
        ),
        needs=Needs(train_eval=True),
        eval_after_first_step=True,
    ),
    Record(
        name="srmm",
        family="sgd",
    ),
    Record(
        name="stableadamw",
        family="adaptive",
        reference=(
            "Wortsman et al., Stable and low-precision training for large-scale vision-language "
            "models, NeurIPS 2023."
        ),
    ),
    Record(
        name="stablespam",
        family="adaptive",
    ),
    Record(
        name="swats",
        family="adaptive",
        title="SWATS",
        summary=(
            "Starts as Adam and switches to SGD once the projection of Adam's step onto the "
            "gradient gives a stable SGD learning rate estimate."
        ),
        reference=(
            "Keskar & Socher, Improving Generalization Performance by Switching from Adam to "
            "SGD, arXiv:1712.07628, 2017."
        ),
    ),
    Record(
        name="tam",
        family="sgd",
    ),
    Record(
        name="tiger",
        family="sign",
        title="Tiger",
        summary=(
            "Tight-fisted sign momentum: m ← βm + (1 − β)g, θ ← θ − η·sign(m); Lion with a "
            "single β."
        ),
        reference=("Su, Tiger: A Tight-fisted Optimizer, 2023, https://github.com/bojone/tiger."),
    ),
    Record(
        name="trac",
        family="lr-free",
        title="TRAC",
        summary=(
            "Parameter-free wrapper: the base optimizer's displacement from θ₀ is scaled by a "
            "learned factor S, tuned online by several betas (an Erfi-potential learner), for "
            "lifelong / continual training."
        ),
        reference=(
            "Muppidi, Zhang & Yang, Fast TRAC: A Parameter-Free Optimizer for Lifelong "
            "Reinforcement Learning, NeurIPS 2024."
        ),
        exempt={
            "live-lr": (
                "TRAC sets θ = θ₀ + S·Δ with a scale S it keeps learning, so θ moves when the "
                "base optimizer's lr is 0."
            ),
        },
    ),
    Record(
        name="vsgd",
        family="sgd",
    ),
    Record(
        name="wsam",
        family="sharpness-aware",
        title="WSAM",
        summary=(
            "Weighted SAM: the base step uses g(θ) plus γ/(1 − γ) times the sharpness term g(θ + "
            "ε) − g(θ), a mix of the plain and the SAM objective."
        ),
        reference=(
            "Yue et al., Sharpness-Aware Minimization Revisited: Weighted Sharpness as a "
            "Regularization Term, KDD 2023."
        ),
        needs=Needs(closure=True, batch=True),
    ),
    Record(
        name="yogi",
        family="adaptive",
        title="Yogi",
        summary=(
            "Adam with an additive second-moment update, v ← v − (1 − β₂)·sign(v − g²)·g², so v "
            "changes slowly and the effective step cannot blow up."
        ),
        reference=(
            "Zaheer, Reddi, Sachan, Kale & Kumar, Adaptive Methods for Nonconvex Optimization, "
            "NeurIPS 2018."
        ),
    ),
)
