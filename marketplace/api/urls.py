from django.urls import include, path

from crowd.api import appeal_views as appeals
from crowd.api import quality_views as work_quality
from crowd.api import views as work

from . import (
    converters,  # noqa: F401 - registers <id:...>
    views,
)
from . import review_views as quality

urlpatterns = [
    path("me", views.MeApi.as_view(), name="me"),
    path("me/roles", views.MeRolesApi.as_view(), name="me-roles"),
    path("tokens", views.TokenListCreateApi.as_view(), name="tokens"),
    path("tokens/<id:token_id>", views.TokenRevokeApi.as_view(), name="token-revoke"),
    path("projects", views.ProjectListCreateApi.as_view(), name="projects"),
    path("projects/<id:project_id>", views.ProjectDetailApi.as_view(), name="project-detail"),
    path("batches", views.BatchListCreateApi.as_view(), name="batches"),
    path("batches/<id:batch_id>", views.BatchDetailApi.as_view(), name="batch-detail"),
    path("batches/<id:batch_id>/tasks", views.BatchTasksApi.as_view(), name="batch-tasks"),
    path("batches/<id:batch_id>/publish", views.BatchPublishApi.as_view(), name="batch-publish"),
    path("batches/<id:batch_id>/pause", views.BatchPauseApi.as_view(), name="batch-pause"),
    path("batches/<id:batch_id>/close", views.BatchCloseApi.as_view(), name="batch-close"),
    path(
        "batches/<id:batch_id>/assignments", views.BatchAssignmentListApi.as_view(), name="batch-assignments"
    ),
    path("assignments/review", quality.AssignmentReviewApi.as_view(), name="assignments-review"),
    path("projects/<id:project_id>/workers", quality.ProjectWorkersApi.as_view(), name="project-workers"),
    path("skills", quality.SkillListCreateApi.as_view(), name="skills"),
    path("skills/<id:skill_id>/values", quality.SkillValueApi.as_view(), name="skill-values"),
    path("batches/<id:batch_id>/rules", quality.BatchRulesApi.as_view(), name="batch-rules"),
    path("batches/<id:batch_id>/rules/<id:rule_id>", quality.BatchRuleDetailApi.as_view(), name="batch-rule"),
    path("restrictions", quality.RestrictionListCreateApi.as_view(), name="restrictions"),
    path(
        "restrictions/<id:restriction_id>/lift",
        quality.RestrictionLiftApi.as_view(),
        name="restriction-lift",
    ),
    path("appeals", appeals.AppealListApi.as_view(), name="appeals"),
    path("appeals/<id:appeal_id>/overturn", appeals.AppealOverturnApi.as_view(), name="appeal-overturn"),
    path("appeals/<id:appeal_id>/uphold", appeals.AppealUpholdApi.as_view(), name="appeal-uphold"),
    path("work/me", work_quality.WorkMeApi.as_view(), name="work-me"),
    path("work/batches", work.WorkBatchListApi.as_view(), name="work-batches"),
    path("work/batches/<id:batch_id>", work.WorkBatchDetailApi.as_view(), name="work-batch-detail"),
    path("work/batches/<id:batch_id>/claim", work.WorkClaimApi.as_view(), name="work-claim"),
    path("work/assignments", work.WorkAssignmentListApi.as_view(), name="work-assignments"),
    path(
        "work/assignments/<id:assignment_id>",
        work.WorkAssignmentDetailApi.as_view(),
        name="work-assignment-detail",
    ),
    path("work/assignments/<id:assignment_id>/submit", work.WorkSubmitApi.as_view(), name="work-submit"),
    path("work/assignments/<id:assignment_id>/skip", work.WorkSkipApi.as_view(), name="work-skip"),
    path("work/assignments/<id:assignment_id>/release", work.WorkReleaseApi.as_view(), name="work-release"),
    path(
        "work/assignments/<id:assignment_id>/appeal", appeals.WorkAppealOpenApi.as_view(), name="work-appeal"
    ),
    path("work/appeals", appeals.WorkAppealListApi.as_view(), name="work-appeals"),
    path("", include("payments.api.urls")),
]

# Results, snapshots and agreement of a batch (issue 4: consensus engine).
from . import results_views as results  # noqa: E402

urlpatterns += [
    path("batches/<id:batch_id>/results", results.BatchResultsApi.as_view(), name="batch-results"),
    path(
        "batches/<id:batch_id>/snapshots",
        results.BatchSnapshotListCreateApi.as_view(),
        name="batch-snapshots",
    ),
    path(
        "batches/<id:batch_id>/snapshots/<id:snapshot_id>/download",
        results.BatchSnapshotDownloadApi.as_view(),
        name="batch-snapshot-download",
    ),
    path("batches/<id:batch_id>/agreement", results.BatchAgreementApi.as_view(), name="batch-agreement"),
]
