SELECT id, total FROM cx_orders WHERE customer_id = 7
