import time

print("Warming up forever, never listening on $PORT")
while True:
    time.sleep(1)
