"""The chat page in Debian's headless Chromium: it loads, a message gets a streamed answer,
the Stop button cuts a long answer short (and the server frees the slot), and the
conversation history goes along with the next message.

Set BITNET_SCREENSHOT=path.png to keep a screenshot of the page at the end."""

import os
import re
import shutil
import time

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "needs Debian's chromium and chromium-driver: " \
                                     "run scripts/install-test-tools.sh"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1100,800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    yield driver
    driver.quit()


def assistant_messages(browser):
    return browser.find_elements(By.CSS_SELECTOR, ".msg.assistant")


def active_slots(base_url):
    text = httpx.get(f"{base_url}/metrics").text
    return int(re.search(r"^bitnet_active_slots (\d+)$", text, re.M).group(1))


def set_value(browser, element_id, value):
    field = browser.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(str(value))


def test_chat_page_streams_stops_and_keeps_history(browser, base_url):
    browser.get(base_url + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda b: b.find_element(By.ID, "status").text.startswith("model: "))
    assert "bitnet chat" in browser.title

    # 1. a long answer streams in, and Stop cuts it short
    set_value(browser, "max-tokens", 400)
    set_value(browser, "temperature", 0.7)
    browser.find_element(By.ID, "input").send_keys("Write a long story about a dragon who "
                                                    "learns to bake bread.")
    browser.find_element(By.ID, "send").click()
    wait.until(lambda b: len(assistant_messages(b)) == 1
               and len(assistant_messages(b)[0].text) > 0)
    first_seen = assistant_messages(browser)[0].text
    wait.until(lambda b: len(assistant_messages(b)[0].text) > len(first_seen) + 10)
    assert "streaming" in assistant_messages(browser)[0].get_attribute("class")
    assert browser.find_element(By.ID, "send").get_attribute("disabled")
    browser.find_element(By.ID, "stop").click()
    wait.until(lambda b: assistant_messages(b)[0].get_attribute("data-done") == "true")
    answer = assistant_messages(browser)[0]
    assert answer.get_attribute("data-stopped") == "true"
    assert "(stopped)" in answer.text
    assert "streaming" not in answer.get_attribute("class")
    assert not browser.find_element(By.ID, "send").get_attribute("disabled")
    deadline = time.monotonic() + 20
    while active_slots(base_url) != 0:
        assert time.monotonic() < deadline, "the stopped answer still holds its slot"
        time.sleep(0.1)

    # 2. a follow-up is answered in full, with the conversation so far sent along
    set_value(browser, "max-tokens", 24)
    browser.find_element(By.ID, "input").send_keys("Thank you! Now say hello.\n")
    wait.until(lambda b: len(assistant_messages(b)) == 2
               and assistant_messages(b)[1].get_attribute("data-done") == "true")
    second = assistant_messages(browser)[1]
    assert second.text.strip(), "no answer to the second message"
    assert "error" not in second.get_attribute("class"), second.text
    roles = browser.execute_script("return conversation.map(m => m.role)")
    assert roles == ["user", "assistant", "user", "assistant"]
    shot = os.environ.get("BITNET_SCREENSHOT")
    if shot:
        browser.save_screenshot(shot)
