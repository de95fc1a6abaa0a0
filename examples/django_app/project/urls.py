from django.urls import path, re_path

from answers import views

urlpatterns = [
    path("jobs/", views.create_job, name="create-job"),
    re_path(r"^jobs/(?P<job_id>batch_[0-9a-f]{32})/$", views.job_status, name="job-status"),
]
