"""The dashboard in a real browser: headless Chromium (Debian's) driven by Selenium.

Run by scripts/test-browser, which starts redis-server, `tern api` and `tern worker` and passes
TERN_API, TERN_OPERATOR_TOKEN, TERN_READER_TOKEN, TERN_ADMIN_TOKEN and TERN_ARTIFACTS. Each check
prints one line; the first failure stops the run with a non-zero exit and a screenshot.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

BASE = os.environ["TERN_API"]
OPERATOR = os.environ["TERN_OPERATOR_TOKEN"]
READER = os.environ["TERN_READER_TOKEN"]
ADMIN = os.environ["TERN_ADMIN_TOKEN"]
ARTIFACTS = os.environ["TERN_ARTIFACTS"]
WAIT = 45  # seconds; generous for a loaded CI machine

# Hostile job data: markup, an attribute break-out with an onerror handler, control characters.
XSS = '<script>alert("x")</script>"><img src=x onerror=alert(1)>\u0007\u001b[31m'


def call(method, path, body=None, token=ADMIN):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + token)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def wait_until(what, predicate, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def job_state(job_id):
    return call("GET", "/v1/jobs/" + job_id)[1]["state"]


def browser():
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


class Dashboard:
    def __init__(self, driver):
        self.driver = driver

    def wait(self, what, predicate):
        try:
            return WebDriverWait(self.driver, WAIT, poll_frequency=0.1).until(lambda d: predicate())
        except TimeoutException:
            raise AssertionError("timed out waiting for " + what) from None

    def view(self):
        return self.driver.execute_script("return document.getElementById('main').dataset.view")

    def open(self, hash_route, view):
        self.driver.execute_script("location.hash = arguments[0]", hash_route)
        self.wait("the " + view + " view of " + hash_route, lambda: self.view() == view and self.driver.execute_script(
            "return document.getElementById('main').dataset.route") == hash_route)

    def status(self):
        return self.driver.execute_script("return document.getElementById('status').textContent")

    def login(self, token):
        self.driver.get(BASE + "/ui")
        self.wait("the login form", lambda: self.view() == "login")
        self.driver.find_element(By.ID, "token").send_keys(token)
        self.driver.find_element(By.CSS_SELECTOR, "#login button").click()
        self.wait("the overview after login", lambda: self.view() == "overview")

    # The page redraws its view every second, so elements are read and clicked by one script call
    # each, never through a reference that a redraw may have replaced.
    def buttons(self):
        return self.driver.execute_script(
            "return [...document.querySelectorAll('main button[data-action]')].map(b => b.dataset.action)")

    def click(self, label):
        self.wait("the button " + label, lambda: self.driver.execute_script(
            "const b = document.querySelector('main button[data-action=\"' + arguments[0] + '\"]');"
            "if (!b || b.disabled) return false; b.click(); return true", label))

    def main_text(self):
        return self.driver.execute_script("return document.getElementById('main').innerText")

    def job_badge(self):
        return self.driver.execute_script("const b = document.querySelector('main h1 .badge'); return b && b.dataset.state")

    def count(self, selector):
        return self.driver.execute_script("return document.querySelectorAll(arguments[0]).length", selector)

    def screenshot(self, page):
        self.driver.save_screenshot(os.path.join(ARTIFACTS, "dashboard-%s.png" % page))

    def assert_no_alert(self):
        try:
            alert = self.driver.switch_to.alert
            text = alert.text
            alert.dismiss()
            raise AssertionError("an alert opened: " + text)
        except NoAlertPresentException:
            pass


def check(name, body):
    body()
    print("ok - " + name, flush=True)


def main():
    status, _ = call("POST", "/v1/jobs", {"task": "echo", "input": {"hello": "dashboard"}})
    assert status == 201, status
    driver = browser()
    ui = Dashboard(driver)
    try:
        def login_page():
            driver.get(BASE + "/ui")
            ui.wait("the login form", lambda: ui.view() == "login")
            ui.screenshot("login")
            driver.find_element(By.ID, "token").send_keys("not-a-token")
            driver.find_element(By.CSS_SELECTOR, "#login button").click()
            ui.wait("the refusal", lambda: "not valid" in driver.find_element(By.ID, "login-error").text)
        check("a wrong token is refused on the login page", login_page)

        def login():
            ui.login(OPERATOR)
            ui.wait("the default queue on the overview", lambda: "default" in ui.main_text())
            stored = driver.execute_script("return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie")
            assert OPERATOR not in stored and "tern_session" not in stored, "the token or the session is readable by scripts"
            assert OPERATOR not in driver.current_url
            ui.wait("the live stream's hello (changes pushed)", lambda: driver.execute_script("return document.body.dataset.pushed") == "true")
            ui.screenshot("overview")
        check("log in with a token: an HttpOnly session, the token kept nowhere; changes pushed over /ui/live", login)

        def live_job():
            status, _ = call("POST", "/v1/queues/default/pause")
            assert status == 200
            status, job = call("POST", "/v1/jobs", {"task": "sleep", "input": {"ms": 300}})
            assert status == 201, job
            driver.execute_script("window.__sameDocument = true")
            ui.open("#/jobs/" + job["id"], "job")
            ui.wait("the job shown as queued", lambda: ui.job_badge() == "queued")
            ui.open("#/queues/default", "queue")
            ui.wait("the paused badge", lambda: ui.count("#paused"))
            ui.click("Resume")
            ui.wait("the queue resumed", lambda: not ui.count("#paused") and "Pause" in ui.buttons())
            ui.open("#/jobs/" + job["id"], "job")
            ui.wait("the job to succeed on the open page", lambda: ui.job_badge() == "succeeded")
            assert driver.execute_script("return window.__sameDocument === true"), "the page was reloaded"
            assert "sleptMs" in ui.main_text()
            ui.screenshot("job")
            ui.open("#/queues/default", "queue")
            ui.wait("the chart counting the finished jobs", lambda: driver.execute_script(
                "const c = document.querySelector('main figcaption'); return c && Number(c.dataset.succeeded) >= 2"))
            ui.wait("the wait percentiles", lambda: "p50 / p99 ≤" in ui.main_text())
        check("a job goes from queued to succeeded without a reload (queue resumed from the page)", live_job)

        def pause_queue():
            ui.open("#/queues/default", "queue")
            ui.click("Pause")
            ui.wait("the paused badge", lambda: ui.count("#paused"))
            assert call("GET", "/v1/queues/default")[1]["paused"] is True
            ui.screenshot("queue")
            ui.click("Resume")
            ui.wait("the queue resumed", lambda: not ui.count("#paused"))
            assert call("GET", "/v1/queues/default")[1]["paused"] is False
        check("pause and resume a queue from its page", pause_queue)

        def limits():
            status, _ = call("PUT", "/v1/queues/default/limits", {"scope": "task", "task": "sleep", "concurrency": 1})
            assert status == 200, status
            ids = [call("POST", "/v1/jobs", {"task": "sleep", "input": {"ms": 60000}})[1]["id"] for _ in range(2)]
            wait_until("the worker holds one back", lambda: call("GET", "/v1/queues/default")[1]["throttled"] == 1)
            ui.open("#/queues/default", "queue")
            ui.wait("the limits table", lambda: ui.count("#limits") and "1 at once" in ui.main_text())
            ui.wait("one job held back", lambda: "(1 jobs held back)" in ui.main_text() and "held back" in ui.main_text())
            ui.screenshot("queue-limits")
            for job_id in ids:
                assert call("POST", "/v1/jobs/%s/cancel" % job_id)[0] == 200
            assert call("DELETE", "/v1/queues/default/limits?scope=task&task=sleep")[0] == 200
        check("a queue's limits and its held-back jobs show on its page", limits)

        def hostile_data():
            status, failing = call("POST", "/v1/jobs", {"task": "fail", "input": {"message": XSS}})
            assert status == 201, failing
            status, echoed = call("POST", "/v1/jobs", {"task": "echo", "input": {"text": XSS}})
            assert status == 201, echoed
            wait_until("the failing job to fail", lambda: job_state(failing["id"]) == "failed")
            wait_until("the echo job to succeed", lambda: job_state(echoed["id"]) == "succeeded")
            for job_id in (failing["id"], echoed["id"]):
                ui.open("#/jobs/" + job_id, "job")
                ui.wait("the payload shown as text", lambda: "<script>alert(" in ui.main_text() and "onerror=alert(1)>" in ui.main_text())
                ui.assert_no_alert()
                assert ui.count("main img, main script") == 0, "job data became markup"
                assert "\\u0007" in ui.main_text(), "control characters are not shown escaped"
            ui.open("#/queues/default?state=failed", "queue")
            ui.wait("the failed job listed", lambda: failing["id"] in ui.main_text())
            ui.assert_no_alert()
            assert ui.count("main img, main script") == 0
            return failing["id"]
        failed_id = []
        check("hostile input, result and error render as text: no alert, no injected element",
              lambda: failed_id.append(hostile_data()))

        def retry_failed():
            ui.open("#/jobs/" + failed_id[0], "job")
            ui.click("Retry")
            wait_until("the retried job to fail a second time", lambda: len(call("GET", "/v1/jobs/" + failed_id[0])[1]["errors"]) == 2)
            ui.wait("the second error on the open page", lambda: ui.main_text().count("attempt") >= 1 and ui.count("main table tbody tr") >= 2)
        check("retry a failed job from its page", retry_failed)

        def run_scheduled():
            status, later = call("POST", "/v1/jobs", {"task": "echo", "input": "run me now", "delay_ms": 3600000})
            assert status == 201 and later["state"] == "scheduled", later
            ui.open("#/jobs/" + later["id"], "job")
            ui.click("Run now")
            wait_until("the job to run now and succeed", lambda: call("GET", "/v1/jobs/" + later["id"])[1]["state"] == "succeeded")
            ui.wait("the page to show it succeeded", lambda: ui.job_badge() == "succeeded")
        check("run a scheduled job now from its page", run_scheduled)

        def delete_finished():
            status, done = call("POST", "/v1/jobs", {"task": "echo", "input": "to delete"})
            assert status == 201, done
            wait_until("the job to succeed", lambda: call("GET", "/v1/jobs/" + done["id"])[1]["state"] == "succeeded")
            ui.open("#/jobs/" + done["id"], "job")
            ui.click("Delete")
            ui.wait("the delete confirmation", lambda: "Confirm: delete this job" in ui.main_text())
            assert call("GET", "/v1/jobs/" + done["id"])[0] == 200, "one click deleted the job"
            ui.click("Delete")
            wait_until("the job deleted", lambda: call("GET", "/v1/jobs/" + done["id"])[0] == 404)
            ui.wait("the queue's succeeded jobs shown, without it",
                    lambda: "#/queues/default?state=succeeded" in ui.driver.current_url and done["id"] not in ui.main_text())
        check("delete a finished job from its page, after a confirmation", delete_finished)

        def schedule():
            status, body = call("PUT", "/v1/schedules/browser-tick", {"name": "browser-tick", "task": "echo", "input": 1, "every_seconds": 3600})
            assert status in (200, 201), body
            ui.open("#/schedules", "schedules")
            ui.wait("the schedule listed", lambda: "browser-tick" in ui.main_text())
            ui.click("Pause")
            ui.wait("the schedule paused", lambda: "paused" in ui.main_text() and "Resume" in ui.buttons())
            assert call("GET", "/v1/schedules/browser-tick")[1]["enabled"] is False
            ui.screenshot("schedules")
            ui.click("Run now")
            ui.wait("the run's job page", lambda: "#/jobs/" in ui.driver.current_url and "browser-tick (tick " in ui.main_text())
            job_id = ui.driver.current_url.split("#/jobs/")[1]
            last_run = call("GET", "/v1/schedules/browser-tick")[1]["last_run"]
            assert last_run and last_run["job"] == job_id, last_run
            wait_until("the run's job succeeded", lambda: call("GET", "/v1/jobs/" + job_id)[1].get("state") == "succeeded")
        check("pause a schedule, and run it now, from the schedules page", schedule)

        def other_pages():
            status, sleeper = call("POST", "/v1/jobs", {"task": "sleep", "input": {"ms": 30000}})
            assert status == 201, sleeper
            ui.open("#/workers", "workers")
            ui.wait("the worker listed", lambda: "/ 4" in ui.main_text())
            ui.wait("the running job under its worker", lambda: sleeper["id"] in driver.execute_script(
                "return [...document.querySelectorAll('main .running a')].map(a => a.textContent).join(' ')"))
            ui.screenshot("workers")
            # Quiet the worker: it follows within its heartbeat, and the page shows it; then resume it.
            ui.click("Quiet")
            ui.wait("the worker quiet", lambda: "Resume" in ui.buttons() and "quiet" in ui.main_text())
            assert call("GET", "/v1/workers")[1]["workers"][0]["state"] == "quiet"
            ui.click("Resume")
            ui.wait("the worker running again", lambda: "Quiet" in ui.buttons())
            wait_until("the worker's entry running", lambda: call("GET", "/v1/workers")[1]["workers"][0]["state"] == "running")
            assert call("POST", "/v1/jobs/%s/cancel" % sleeper["id"])[0] == 200
            ui.open("#/tasks", "tasks")
            ui.wait("the tasks listed", lambda: "sleep" in ui.main_text() and "ms" in ui.main_text())
            ui.screenshot("tasks")
        check("the workers and tasks pages", other_pages)

        def task_filter():
            ui.open("#/queues/default?state=failed", "queue")
            ui.wait("the task filter's links", lambda: ui.count("#task-filter a") >= 3)
            driver.execute_script("[...document.querySelectorAll('#task-filter a')].find(a => a.textContent === 'fail').click()")
            ui.wait("the failed job under task fail", lambda: "task=fail" in driver.current_url and failed_id[0] in ui.main_text())
            ui.open("#/queues/default?state=failed&task=echo", "queue")
            assert failed_id[0] not in ui.main_text(), "the filter let another task's job through"
        check("filter a queue's jobs by task", task_filter)

        def workflow():
            status, flow = call("POST", "/v1/workflows", {"chain": [{"task": "echo", "input": {"step": 1}}, {"task": "echo"}, {"task": "echo"}]})
            assert status == 201, flow
            wait_until("the chain succeeded", lambda: call("GET", "/v1/workflows/" + flow["id"])[1]["state"] == "succeeded")
            ui.open("#/jobs/" + flow["id"], "job")
            ui.wait("the link to the workflow", lambda: "chain (this job ends it)" in ui.main_text())
            driver.execute_script("[...document.querySelectorAll('main a')].find(a => a.textContent === 'chain (this job ends it)').click()")
            ui.wait("the workflow page", lambda: ui.view() == "workflow" and "3 of 3 jobs finished" in ui.main_text())
            assert all(job_id in ui.main_text() for job_id in flow["jobs"]), "a job of the chain is missing"
            ui.screenshot("workflow")
            status, slow = call("POST", "/v1/workflows", {"chain": [{"task": "sleep", "input": {"ms": 30000}}, {"task": "echo"}]})
            assert status == 201, slow
            ui.open("#/workflows/" + slow["id"], "workflow")
            ui.click("Cancel workflow")
            ui.wait("the confirm step", lambda: "Confirm: cancel every unfinished job" in ui.main_text())
            ui.click("Cancel workflow")
            wait_until("the workflow cancelled", lambda: call("GET", "/v1/workflows/" + slow["id"])[1]["state"] == "cancelled")
        check("a workflow's page from its final job; cancel a workflow after a confirm step", workflow)

        def purge():
            assert call("GET", "/v1/queues/default")[1]["succeeded"] > 0
            ui.open("#/queues/default?state=succeeded", "queue")
            ui.click("Purge succeeded")
            ui.wait("the confirm step", lambda: "Confirm: delete every succeeded job" in ui.main_text())
            assert call("GET", "/v1/queues/default")[1]["succeeded"] > 0, "one click must not purge"
            ui.click("Purge succeeded")
            wait_until("the succeeded jobs purged", lambda: call("GET", "/v1/queues/default")[1]["succeeded"] == 0)
        check("purge a state from the queue page, after a confirm step", purge)

        def reader():
            ui.wait("the logout button", lambda: driver.execute_script(
                "const b = document.getElementById('logout'); if (!b) return false; b.click(); return true"))
            ui.wait("the login form after logout", lambda: ui.view() == "login")
            ui.login(READER)
            for route, view in (("#/queues/default", "queue"), ("#/jobs/" + failed_id[0], "job"), ("#/schedules", "schedules")):
                ui.open(route, view)
                assert ui.buttons() == [], "a reader sees action buttons on " + route
            refused = driver.execute_script(
                "return fetch('/v1/queues/default/pause', {method: 'POST', headers: {'X-CSRF-Token': 'x'}}).then(r => r.status)")
            assert refused == 403, refused
            assert call("GET", "/v1/queues/default")[1]["paused"] is False
        check("a reader sees everything but no action buttons, and its posts are refused", reader)
    except Exception:
        ui.screenshot("failure")
        raise
    finally:
        driver.quit()


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # every failure, a timeout or a browser error too, is one clear line
        print("not ok - %s: %s" % (type(error).__name__, error), flush=True)
        sys.exit(1)
