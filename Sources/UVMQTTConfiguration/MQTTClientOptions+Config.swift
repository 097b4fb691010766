import UVMQTT
