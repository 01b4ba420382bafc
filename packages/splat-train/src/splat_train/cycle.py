"""Cycle consistency (paper, "Cycle-Consistency Regularization"): the student's Gaussians rendered at a target view
must carry enough information to reconstruct the source view.

    x̃_v   = R(ŝ₀, v)                                  render the first prediction at target view v
    s̃₀    = D_θ(q(teacher(x̃_v), t), t, x̃_v)          predict again, conditioned on that rendering
    L_cyc = || x_src − R(s̃₀, v_src) ||²               render the second prediction back at the source view

The second prediction starts, like every student prediction, from the teacher's prediction for its conditioning
image, noised to t (one denoising step). Gradients flow through both passes: into the first prediction through x̃_v
(the conditioning image of the second pass) and into the student's parameters through both calls. The teacher only
provides the (detached) starting point.
"""

from jaxtyping import Float, Int
from torch import Tensor, nn

from splat_diffusion import Schedule, q_sample
from splat_render import Gaussians, render

from .batch import ViewBatch, source_seen_from_view, view_as_input_camera
from .losses import l2
from .student import student_gaussians, teacher_targets


def cycle_consistency_loss(
    student: nn.Module,
    teacher: nn.Module,
    schedule: Schedule,
    batch: ViewBatch,
    predicted: Gaussians,
    t: Int[Tensor, " batch"],
    noise: Float[Tensor, "batch channels height width"],
    *,
    view: int = 0,
    background: Float[Tensor, "3"] | float = 1.0,
) -> Float[Tensor, " batch"]:
    """L_cyc per object for the student's `predicted` Gaussians (in the source frame), through target view `view`.

    `student` is a `GaussianDenoiser` (or anything with its call signature and a `normalizer`); `noise` is the
    standard normal draw for noising the teacher's map of the rendered view to `t`.
    """
    rendered = render(predicted, batch.target_cameras.select_views(view), background=background).rgb[:, 0]
    view_camera = view_as_input_camera(batch.target_cameras, view)
    view_inputs = {k: v[:, view] for k, v in batch.target_teacher_inputs.items()}
    clean = teacher_targets(teacher, student, rendered.detach(), view_camera, **view_inputs)
    second = student(q_sample(schedule, clean, t, noise), t, rendered)
    gaussians = student_gaussians(teacher, student, second, view_camera, **view_inputs)
    back = render(
        gaussians, source_seen_from_view(batch.source_cameras, batch.target_cameras, view), background=background
    ).rgb[:, 0]
    return l2(back, batch.source_images)
