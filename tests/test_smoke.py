def test_home_page(test_client):
    assert test_client.get("/").status_code == 200
