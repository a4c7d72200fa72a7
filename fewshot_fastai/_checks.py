"Argument checks for the public entry points: an impossible value raises an error naming the argument and the value"

__all__ = ['check_int', 'check_positive']

def check_int(where:str, name:str, value, low:int=1):
    "`value` must be an integer >= `low`"
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f'{where}: {name}={value!r}; it must be an integer >= {low}')
    return value

def check_positive(where:str, name:str, value):
    "`value` must be a number > 0"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f'{where}: {name}={value!r}; it must be a number > 0')
    return value
